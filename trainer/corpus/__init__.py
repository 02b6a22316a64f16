"""The corpus pipeline: fetch the verse lines, cut them into poems, label and store datasets."""
