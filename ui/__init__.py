"""The Gradio interface, one module per tab; each exposes `build_<tab>_tab(ctx)` and plain handler functions."""
