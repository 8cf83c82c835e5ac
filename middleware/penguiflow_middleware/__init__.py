"""Plug-in layers for penguiflow, on its public middleware API only."""
