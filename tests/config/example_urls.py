"""The service's URLs plus the example checkout page, as config/urls.py adds it when DEBUG is on.

The tests run with DEBUG off, where config/urls.py leaves the page out; test_settings.py checks
the real route under the local settings.
"""

from django.urls import path

from config.examples import checkout_page
from config.urls import urlpatterns as service_urlpatterns

urlpatterns = [*service_urlpatterns, path("examples/checkout/", checkout_page)]
