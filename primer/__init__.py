"""Core of the companion app: everything that computes. Never imports streamlit."""
