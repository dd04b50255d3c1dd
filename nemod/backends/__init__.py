"""Backends: the edit/export step behind one interface (:class:`nemod.backends.base.Backend`).

``local`` runs the embedded engine on this machine; ``cloud`` drives the NemoVideo API.
"""
