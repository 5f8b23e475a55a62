"""Run Django's system checks where Django itself would not (gunicorn, Celery).

`runserver` and `manage.py` commands stop on check errors by themselves; a
WSGI server or a Celery worker would start regardless. Production must refuse
to start without its secrets, so those entry points call this.
"""

from django.core import checks
from django.core.exceptions import ImproperlyConfigured


def refuse_to_start_on_errors() -> None:
    errors = [m for m in checks.run_checks() if m.is_serious() and not m.is_silenced()]
    if errors:
        lines = "\n".join(f"  {m.id}: {m.msg} {m.hint or ''}".rstrip() for m in errors)
        raise ImproperlyConfigured(f"Refusing to start; fix these settings first:\n{lines}")
