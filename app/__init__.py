"""The top of the stack: the ``deepscope`` command (:mod:`app.cli`) and the demo (:mod:`app.demo`).

Every area sits below it; nothing imports it.
"""
