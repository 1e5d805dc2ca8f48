"""A small Django project for tests/acceptance/test_django.py: settings, manage.py, one app."""
