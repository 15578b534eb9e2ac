"""Worked examples (``lif-export digits``)."""
