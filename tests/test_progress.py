"""The one progress display: plain lines when stderr is not a terminal (logs), silent when disabled."""

from motif_jax.progress import ProgressBar


def test_lines_carry_info_and_restart_counts_again(capsys):
    with ProgressBar("epoch 1/2", 2, "batches", line_every_s=0.0) as bar:
        bar.update(info="loss 0.5")
        bar.advance(2)
        bar.restart("epoch 2/2", 3)
        bar.advance(3)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("epoch 1/2: 2/2 batches,") and lines[0].endswith("ETA 0 s, loss 0.5")
    assert lines[-1].startswith("epoch 2/2: 3/3 batches,") and "loss" not in lines[-1]


def test_transient_bar_prints_no_final_line_and_disabled_prints_nothing(capsys):
    with ProgressBar("x", 2, line_every_s=3600, transient=True) as bar:
        bar.advance(2)
    with ProgressBar("y", 2, enabled=False) as bar:
        bar.advance(2)
    assert bar.done == 2 and capsys.readouterr().err == ""
