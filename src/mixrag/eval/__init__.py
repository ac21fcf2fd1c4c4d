"""Evaluation: datasets of questions with gold answers and passages, metrics, runners."""
