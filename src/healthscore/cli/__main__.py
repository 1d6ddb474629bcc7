"""`python -m healthscore.cli ...`, and the file `spark-submit` runs on a cluster:
`spark-submit --master yarn "$(python -c 'import healthscore.cli.__main__ as m; print(m.__file__)')" score --engine spark ...`."""

from healthscore.cli import app

app()
