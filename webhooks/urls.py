from django.urls import path

from webhooks import views

urlpatterns = [
    path("yookassa/", views.yookassa_notification, name="yookassa-notification"),
]
