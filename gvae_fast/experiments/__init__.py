"""Experiments: evaluation references and runners."""
