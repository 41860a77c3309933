// The grade report's story filter (tinygpt/grade/report.py inlines this). The page works without
// it: the filter stays hidden and every story shows.
"use strict";
(function () {
  const box = document.querySelector(".filter");
  const select = document.getElementById("flag-filter");
  const counter = document.getElementById("filter-count");
  if (!box || !select) return;
  const stories = Array.from(document.querySelectorAll("article.story"));

  function matches(story, wanted) {
    const flags = story.dataset.flags ? story.dataset.flags.split(" ") : [];
    return wanted === "" || (wanted === "*" ? flags.length > 0 : flags.includes(wanted));
  }

  function apply() {
    const wanted = select.value;
    let total = 0;
    for (const story of stories) {
      const show = matches(story, wanted);
      story.hidden = !show;
      total += show;
    }
    // each run's own count, in its summary, so that a closed run says whether it has any
    for (const run of document.querySelectorAll("details.run")) {
      const n = run.querySelectorAll("article.story:not([hidden])").length;
      const out = run.querySelector(".shown");
      if (out) out.textContent = wanted === "" ? "" : `· ${n} shown`;
    }
    counter.textContent = wanted === "" ? "" : `${total} of ${stories.length} stories`;
  }

  select.addEventListener("change", apply);
  box.hidden = false;
  apply();  // a value the browser kept from before a reload
})();
