"""The yardstick for cold start: the smallest Streamlit app that paints a heading."""

import streamlit as st

st.title("Hello, world")
