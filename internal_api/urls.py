from django.urls import path

from internal_api import views

urlpatterns = [
    path("viewers/<str:viewer_id>/entitlements", views.viewer_entitlements),
    path("entitlements:batch", views.entitlements_batch),
    path("viewers/<str:viewer_id>/subscriptions", views.viewer_subscriptions),
    path("viewers/<str:viewer_id>/payments", views.viewer_payments),
]
