"""The embedded virtual lab: the genuine labscript suite on dummy devices, with exact physics.

``lab`` starts and stops runmanager, BLACS, zlock and zlog for a tree; ``machines`` are the
apparatus headers' gates, evolving the atoms' state exactly (``physics``, ``spins``,
``fermions``); ``camera`` leaves the measured image in the shot, and fails on demand.

Apparatus headers import it inside runmanager and BLACS. Headers and profiles written by
earlier versions import ``spooler.lab.machines``, ``spooler.lab.physics`` and the like:
those names are kept as aliases of these modules (:mod:`spooler.lab.oldnames`).
"""
