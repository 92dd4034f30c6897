"""Error reports that carry no personal data.

Why: Django's error e-mail to ADMINS (and the debug page) includes the POST body and the local
variables of every frame — for a failed resident search that is the name and birth date typed
in. Every POST value and every frame variable is replaced, always, whatever DEBUG says.
"""

from __future__ import annotations

from django.views.debug import SafeExceptionReporterFilter


class NoPersonalDataFilter(SafeExceptionReporterFilter):
    """Hide all POST values and frame variables in error reports (MN-03, DATA-01)."""

    def is_active(self, request) -> bool:
        return True

    def get_post_parameters(self, request):
        if request is None:
            return {}
        return {key: self.cleansed_substitute for key in request.POST}

    def get_traceback_frame_variables(self, request, tb_frame):
        return [(name, self.cleansed_substitute) for name in tb_frame.f_locals]
