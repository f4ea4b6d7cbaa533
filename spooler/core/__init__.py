"""The shared core: what a job is, where it is kept, and how labspool is configured.

Every other part of labspool imports this package, and it imports none of them: the spooler's
pipeline (``spooler.pipeline``), the lab boundary (``spooler.lab``), the virtual lab
(``spooler.virtual``), the gateway (``spooler.gateway``), the CLI (``spooler.cli``) and the
result daemon (``result``). ``tests/test_layers.py`` holds the arrows to that.

Its modules, by what they are about:

- the job: ``model`` (a validated job), ``states`` (the one state machine), ``jobid``,
  ``names``, ``backends`` (the machines and their gates), ``errors``;
- where it is kept: ``store`` (SQLite: jobs, experiments, history, notices) and ``schema``
  (every table and migration), ``jobs`` (the store with its status files), ``statusfile``,
  ``items`` (poison items: deaths counted, then quarantine), ``pause``, ``health`` (the
  machine's health as the spooler last saw it);
- files and folders: ``fsutil`` (atomic, durable writes), ``intake`` (a watched folder,
  oldest first, claimed by rename), ``submission`` (a job file into the dump folder),
  ``strictjson``, ``timestamps``;
- configuration: ``settings`` (the one settings object, from YAML checked by
  ``schemas/config.schema.json``), ``resources`` (the shipped data), ``labprofile`` (the
  labscript suite's profile), ``scaffold`` (a new tree: ``labspool init``);
- what people read: ``estimates``, ``statusview`` and ``statuspages`` (``labspool status``,
  a page of jobs at a time), ``progressline`` (a progress line on standard error), ``metrics``;
- housekeeping: ``retention`` (``labspool prune``) and ``prunereport``;
- running as a service: ``watching`` (the daemons' common loop), ``serve``, ``notify``
  (systemd's notify socket), ``logs``, ``headless``.
"""
