"""The dashboard: a web page served by the daemon (``status_port:``) showing what nemod is
doing and letting a person act on jobs. :mod:`nemod.web.data` is its one adapter over the
job store; :mod:`nemod.web.views` draws pages (pure); :mod:`nemod.web.server` serves them."""
