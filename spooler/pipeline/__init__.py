"""The spooler's pipeline: a job file from the dump folder to shots engaged on the machine.

``daemon`` wires the steps and runs the loop: ``admission`` (claim, parse, ``validation`` and
``semantics``, ``render``), ``dispatch`` (engage jobs on the lab, look ahead, time out),
``monitor`` and ``recovery`` (the machine's health, lost shots made again), ``control`` and
``labactions`` (the operator's commands), ``fairshare``, ``checks``, ``notifications``.

It imports the shared core (``spooler.core``) and the lab boundary (``spooler.lab``).
"""
