"""The fulfillment URL's entry point, at the path sellers' stacks and external checks name.

Its code lives in fulfillment/registration/ (handler.py); this module only keeps the path.
"""

from __future__ import annotations

from fulfillment.registration.handler import lambda_handler

__all__ = ["lambda_handler"]
