"""Gradio UI: the Structure Video tab, its host bridge, the compat base class and the standalone app."""
