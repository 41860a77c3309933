"""Exporting a trained model for other tools: `export(run, out_dir, "hf" | "llama2c")`."""

from tinygpt.export.core import FORMATS, export

__all__ = ["FORMATS", "export"]
