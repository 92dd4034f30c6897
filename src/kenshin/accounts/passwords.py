"""PLACEHOLDER — being implemented (context-word validator, expiry, temporary passwords)."""


class ContextWordValidator:
    def validate(self, password, user=None):
        return None

    def get_help_text(self):
        return ""


def change_required(user) -> bool:
    return False
