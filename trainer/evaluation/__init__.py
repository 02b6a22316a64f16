"""Evaluation metrics and the semantic judge: the measured truth about the emotion models."""
