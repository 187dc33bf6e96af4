"""Two fixes to the book's HTML that the browser check (.ci/check_browser.py) found: a Sphinx
extension, listed in _config.yml's ``sphinx: extra_extensions`` (it is in the package so that any
build of the book, whatever its config's folder, can import it; nothing else imports it):

- sphinx-thebe's configuration script (and togglebutton's) is added to every page twice (jupyter-book 1.0.4 with
  sphinx-thebe 0.3), and the second ``const THEBE_JS_URL`` is a JavaScript error in the console:
  each script is kept once;
- pydata-sphinx-theme logs "Got invalid theme mode" on a reader's first visit when no
  ``default_mode`` is set: it is set to "auto" (follow the reader's system), what the theme falls
  back to anyway.
"""


def _default_mode(app, config):
    # pydata-sphinx-theme reads it from the template context, not from the theme options
    config.html_context.setdefault("default_mode", "auto")


def _scripts_once(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # the same script added twice (once with filename None, once ""), is one script
        key = (str(getattr(script, "filename", script) or ""), repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app):
    app.connect("config-inited", _default_mode)
    # early: emit_firstresult stops at the first handler that returns a template name
    app.connect("html-page-context", _scripts_once, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
