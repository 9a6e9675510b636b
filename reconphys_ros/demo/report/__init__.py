"""Figures and text of the demo report: image strips and videos (strips), plots, summary.md / summary.json."""
