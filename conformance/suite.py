"""The whole suite as one pytest module; the backend comes from ``--cachespec-backend``.

pytest --pyargs cachespec.conformance.suite --cachespec-backend 'memory://?capacity=64'
"""

from .kit import conformance_tests

TestConformance = conformance_tests()
