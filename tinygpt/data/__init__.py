"""Story data: readers and cleaning of story files (`tinygpt.data.readers`, whose names are also
here), the built-in story generator (`stories`, `story_words`), `prepare` (stories -> token
shards) and the shard format (`shards`)."""

from tinygpt.data.readers import (
    FORMATS, HF_PREFIX, SEPARATOR, DecodeError, ReadStats, clean_story, fix_mojibake, iter_stories, list_files,
    load_hf_dataset, read_stories,
)

__all__ = [
    "FORMATS", "HF_PREFIX", "SEPARATOR", "DecodeError", "ReadStats", "clean_story", "fix_mojibake", "iter_stories",
    "list_files", "load_hf_dataset", "read_stories",
]
