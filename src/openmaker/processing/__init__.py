"""Processing jobs (CreateProcessingJob and its lifecycle, run under SageMaker's processing
container contract) and the data-preparation library, :mod:`openmaker.processing.transforms`.

``service`` holds the operations and their checks, ``runner`` runs a job, ``contract`` is
the container contract (tree, config files, command line, container paths), ``inputs`` and
``outputs`` move data in and out, ``images`` says which images run, ``spark`` is the Spark
image's ``smspark-submit``, and ``pathmap/sitecustomize.py`` maps ``/opt/ml`` paths inside
a job's Python processes. See ``docs/processing-jobs.md``."""
