"""The podtarget pipelines, each a ``python -m podtarget.pipelines.<name>`` command with a ``run(argv)`` entry point.

Importing them starts nothing: the daily commands (backfill, build_features, build_examples) start their worker
processes' server in their ``main()``, from the parsed options (:func:`podtarget.pipelines.daily.start_worker_server`).
"""
