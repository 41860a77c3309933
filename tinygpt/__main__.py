from tinygpt.cli import main

raise SystemExit(main())
