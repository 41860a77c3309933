"""Grading stories: offline checks of consistency and grammar (`check_story`) and of a set's
diversity and vocabulary (`diversity`)."""

from tinygpt.grade.checks import CHECKS, check_story
from tinygpt.grade.diversity import diversity

__all__ = ["CHECKS", "check_story", "diversity"]
