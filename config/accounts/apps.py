from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "config.accounts"
    # The label (and so the tables and migrations) predates the move under config/.
    label = "accounts"
    verbose_name = "Sign-in and API tokens"
