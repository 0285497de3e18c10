"""The local web demo (`facesketch serve`): a FastAPI app with one self-contained page and a JSON API.

Needs the ``serve`` extra (fastapi, uvicorn, python-multipart); the face path also needs the ``faces`` extra.
"""
