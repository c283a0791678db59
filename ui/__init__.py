"""Streamlit UI pieces for app.py. Only this package and app.py import streamlit."""
