"""Grading stories: offline checks of consistency and grammar (`check_story`)."""

from tinygpt.grade.checks import CHECKS, check_story

__all__ = ["CHECKS", "check_story"]
