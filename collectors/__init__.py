"""Footfall's collectors: consumer groups on the event stream."""
