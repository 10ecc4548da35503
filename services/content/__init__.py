"""Uploaded media (banners, images) and share posters."""
