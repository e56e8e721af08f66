"""Run the original Attune (TensorFlow) beside the PyTorch port on the same preprocessed data.

One command::

    .venv/bin/python benchmarks/bench_original.py --original /path/to/Attune

does, for each dataset (default: the real bone-marrow subset and the simulator):

1. creates (once) a separate TensorFlow environment ``.venv-original/`` with ``python3.11 -m venv``
   and pip: ``tensorflow-cpu==2.15.1`` (the last release whose ``tf.keras`` is Keras 2, which the
   original's code is written for; it has Python 3.11 wheels) plus the packages the original's
   ``Attune_function6_22.py`` imports at module level (:data:`TF_REQUIREMENTS`);
2. preprocesses the data once with :func:`attune_lib.pp.preprocess` (RNA log-normalised, ATAC raw
   peak counts, PCA/LSI references for NC) and writes the exact matrices the port consumes to
   ``rna.h5ad`` / ``atac.h5ad`` (the hand-off);
3. runs the original in a subprocess of the TensorFlow environment: its own
   ``concerto_make_tfrecord`` (TFRecords, one file per batch, as its notebooks do), its own
   ``attune_pretrain`` (the paper's settings: batch 128, 20 epochs, lr 1e-4, dropout 0.1,
   temperature 0.1) and its own encoder constructors with the saved per-epoch weights for the
   embeddings;
4. runs the port (:class:`attune_lib.models.Attune`, same settings) on the same AnnData;
5. scores every epoch of both with :mod:`attune_lib.metrics` (FOSCTTM, MAP, ASW, NC, SAS, GC,
   omics-layer ASW, per-modality label MAP) for 3 seeds each and writes the table (mean, SD,
   range, and whether the difference exceeds the seed noise) and the curves (CSV + PNG).

Adaptations of the original (only the data hand-off and the environment; its model, loss,
optimiser and training loop run unchanged):

* Input: the original reads TFRecords written by its ``concerto_make_tfrecord`` from an AnnData;
  we call that function on the AnnData we hand off (``.X`` = the port's input matrix,
  ``obs["batch"]``) instead of on its own ``ad_rna.h5ad`` / ``ad_atac.h5ad``.
* ``numpy.float`` (removed in NumPy 1.24; used by the original's TFRecord writer) is set to the
  builtin ``float`` it aliased.
* ``tf.keras.optimizers.Adam`` is pointed to ``tf.keras.optimizers.legacy.Adam``: the original
  applies one Adam instance to four variable lists in turn, which TF 2.5's optimizer allowed and the
  Keras 2.11+ optimizer refuses; the legacy class is TF 2.5's optimizer.
* Embeddings: the original's ``attune_test`` batches with ``drop_remainder=True``, so the last
  incomplete minibatch of every batch file gets no embedding. We build the same encoders with its
  ``multi_embedding_attention_pretrain_RNA/ATAC``, load the weights it saved after each epoch and
  call them (as ``attune_test`` does: no ``training`` argument, L2-normalised output) on all cells.
* The per-step loss is read by wrapping its ``simclr_loss`` (the value is recorded, nothing is
  changed) and divided by 2 to match the port's scale (its NT-Xent sums the two directions, the
  port averages them).

Also runs, unless ``--variants`` says otherwise, a diagnostic port configuration
``port_origmode``: batch norm and dropout kept in inference mode during training, and the
learning rate ending where the original's ends (see ``docs/faithful_but_correct.md``,
"Port vs original").

The worker half of this file (``--_worker``) runs inside the TensorFlow environment and imports
neither torch nor :mod:`attune_lib`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ENV = REPO / ".venv-original"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "original"

#: What the TensorFlow environment gets. tensorflow-cpu 2.15 is the newest release whose tf.keras is
#: Keras 2; the rest are the module-level imports of the original's Attune_function6_22.py.
TF_REQUIREMENTS = (
    "tensorflow-cpu==2.15.1",
    "numpy==1.26.4",
    "h5py==3.16.0",
    "einops==0.8.2",
    "pandas==2.3.3",
    "scikit-learn==1.9.1",
    "anndata==0.12.19",
    "scanpy==1.11.5",
    "umap-learn==0.5.12",
    "openTSNE==1.0.4",
)

#: The paper's pretraining settings (and the original notebooks' ``dict_``).
PAPER = {"batch_size": 128, "epochs": 20, "lr": 1e-4, "drop_rate": 0.1, "temperature": 0.1}

METRIC_COLS = ("foscttm", "map", "asw", "nc", "sas", "asw_batch", "gc", "map_rna", "map_atac",
               "alignment", "uniformity")
#: higher is better for all but these
LOWER_BETTER = ("foscttm", "alignment", "uniformity", "loss")


# ==================================================================================================
# TensorFlow side (runs in .venv-original; no torch, no attune_lib)
# ==================================================================================================
def _worker(argv: list[str]) -> None:
    """Train the original on a hand-off folder and write per-epoch embeddings (TensorFlow env)."""
    p = argparse.ArgumentParser(prog="bench_original.py --_worker")
    p.add_argument("--original", required=True)
    p.add_argument("--handoff", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--batch-col", default="")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)

    import numpy as np

    if not hasattr(np, "float"):
        np.float = float  # removed alias used by the original's create_tfrecord
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.optimizers.Adam = tf.keras.optimizers.legacy.Adam  # TF 2.5's optimizer semantics
    sys.path.insert(0, str(Path(a.original).resolve()))
    import anndata

    import Attune_function6_22 as AF  # the original's functions, unchanged

    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    AF.set_seeds(a.seed)  # the original's own seeding helper (python, numpy, tf)
    rna = anndata.read_h5ad(Path(a.handoff) / "rna.h5ad")
    atac = anndata.read_h5ad(Path(a.handoff) / "atac.h5ad")
    batch_col = a.batch_col or None
    rna_tf, atac_tf = str(work / "tfrecord" / "RNA") + "/", str(work / "tfrecord" / "ATAC") + "/"
    AF.concerto_make_tfrecord(rna, tf_path=rna_tf, batch_col_name=batch_col)
    AF.concerto_make_tfrecord(atac, tf_path=atac_tf, batch_col_name=batch_col)
    # steps per epoch: one pass over each batch file, drop_remainder=True
    col = batch_col or "batch_"
    sizes = rna.obs[col].value_counts()
    steps_per_epoch = int(sum(int(n) // a.batch_size for n in sizes))
    if steps_per_epoch == 0:
        raise SystemExit(f"every batch of {col!r} has fewer cells than batch_size={a.batch_size} "
                         f"({dict(sizes)}): the original would not train")

    losses: list[float] = []
    original_loss = AF.simclr_loss

    def tapped_loss(*args, **kwargs):
        value = original_loss(*args, **kwargs)
        losses.append(float(value))
        return value

    AF.simclr_loss = tapped_loss
    weight_path = str(work / "weight") + "/"
    params = {"batch_size": a.batch_size, "epoch_pretrain": a.epochs, "lr": a.lr, "drop_rate": 0.1,
              "temperature": 0.1}
    t0 = time.perf_counter()
    AF.attune_pretrain(rna_tf, atac_tf, weight_path, super_parameters=params)
    train_s = time.perf_counter() - t0

    # embeddings of every cell after every epoch, with the original's encoders and saved weights
    n_rna, n_atac = rna.n_vars, atac.n_vars
    enc_rna = AF.multi_embedding_attention_pretrain_RNA(
        multi_max_features=[n_rna], mult_feature_names=["RNA"], embedding_dims=128,
        include_attention=True, drop_rate=0.1, head_1=128, head_2=128, head_3=128)
    enc_atac = AF.multi_embedding_attention_pretrain_ATAC(
        embedding_matrix=None, multi_max_features=[n_atac], mult_feature_names=["ATAC"],
        embedding_dims=128, include_attention=True, drop_rate=0.1, head_1=128, head_2=128, head_3=128)

    def dense(X):
        return np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float32)

    Xr, Xa = dense(rna.X), dense(atac.X)

    def embed(model, X, chunk=64):
        out = []
        for s in range(0, X.shape[0], chunk):
            v = X[s:s + chunk]
            f = np.broadcast_to(np.arange(X.shape[1], dtype=np.int64), v.shape)
            z, _ = model([tf.constant(f), tf.constant(v)])
            out.append(tf.math.l2_normalize(z, axis=-1).numpy())
        return np.concatenate(out)

    emb_rna, emb_atac, bn_stats = [], [], {}
    for e in range(1, a.epochs + 1):
        enc_rna.load_weights(weight_path + f"weight_encoder_epoch{e}.h5")
        enc_atac.load_weights(weight_path + f"weight_encoder_embedding_epoch{e}.h5")
        emb_rna.append(embed(enc_rna, Xr))
        emb_atac.append(embed(enc_atac, Xa))
    for model, name in ((enc_rna, "rna"), (enc_atac, "atac")):
        for layer in model.layers:
            if isinstance(layer, tf.keras.layers.BatchNormalization):
                mm, mv = layer.moving_mean.numpy(), layer.moving_variance.numpy()
                bn_stats[f"{name}/{layer.name}"] = [float(np.abs(mm).max()), float(np.abs(mv - 1).max())]
    np.savez_compressed(
        work / "original_result.npz", rna=np.stack(emb_rna).astype(np.float32),
        atac=np.stack(emb_atac).astype(np.float32), losses=np.asarray(losses, dtype=np.float64),
        steps_per_epoch=steps_per_epoch)
    meta = {"tensorflow": tf.__version__, "train_s": train_s, "steps_per_epoch": steps_per_epoch,
            "batch_sizes": {str(k): int(v) for k, v in sizes.items()},
            "bn_moving_stats_max_abs_mean_and_var_minus_1": bn_stats}
    (work / "original_meta.json").write_text(json.dumps(meta, indent=1))


# ==================================================================================================
# project side
# ==================================================================================================
def ensure_tf_env(env_dir: Path, *, python: str = "python3.11") -> Path:
    """Create (once) the TensorFlow environment and return its Python.

    Parameters
    ----------
    env_dir
        Folder of the virtual environment (``.venv-original`` by default).
    python
        Interpreter used for ``-m venv`` (must be 3.11: TensorFlow 2.15 has wheels for 3.9-3.11).

    Returns
    -------
    Path
        ``env_dir/bin/python``.
    """
    tag = hashlib.sha1("\n".join(TF_REQUIREMENTS).encode()).hexdigest()[:12]
    marker = env_dir / f".installed-{tag}"
    py = env_dir / "bin" / "python"
    if marker.exists() and py.exists():
        return py
    if not py.exists():
        print(f"[env] creating {env_dir} with {python}", flush=True)
        try:
            subprocess.run([python, "-m", "venv", str(env_dir)], check=True)
        except (OSError, subprocess.CalledProcessError) as err:
            raise SystemExit(f"could not create the TensorFlow environment {env_dir} with {python!r}: {err}. "
                             "Install Python 3.11 or pass --python") from err
    print(f"[env] pip install {' '.join(TF_REQUIREMENTS)}", flush=True)
    res = subprocess.run([str(py), "-m", "pip", "install", "--quiet", *TF_REQUIREMENTS])
    if res.returncode != 0:
        raise SystemExit(f"pip could not install the TensorFlow environment in {env_dir} "
                         f"(requirements {TF_REQUIREMENTS}); see the pip output above")
    check = subprocess.run([str(py), "-c", "import tensorflow as tf; assert tf.__version__.startswith('2.15')"])
    if check.returncode != 0:
        raise SystemExit(f"TensorFlow does not import in {env_dir}")
    marker.write_text("\n".join(TF_REQUIREMENTS) + "\n")
    return py


def find_original(path: str | None) -> Path:
    """The original checkout: ``--original``, else ``$ATTUNE_ORIGINAL_DIR``; checked for its files."""
    path = path or os.environ.get("ATTUNE_ORIGINAL_DIR")
    if not path:
        raise SystemExit("give the original Attune checkout (github.com/melobio/Attune) with --original PATH "
                         "or the environment variable ATTUNE_ORIGINAL_DIR")
    root = Path(path).expanduser().resolve()
    need = ["Attune_function6_22.py", "bgi/models/DeepSingleCell_Attune.py", "bgi/layers/attention.py",
            "bgi/losses/contrastive_loss.py", "bgi/utils/data_utils.py"]
    missing = [n for n in need if not (root / n).is_file()]
    if missing:
        raise SystemExit(f"{root} is not a checkout of the original Attune: missing {missing}")
    return root


def _shared_data() -> Path:
    return Path(os.environ.get("ATTUNE_DATA_DIR", REPO.parent / "shared" / "data"))


def load_data(name: str, args) -> tuple[object, str, str | None, str]:
    """Raw-count MuData of one dataset.

    Returns ``(mdata, cell_type_key, batch_key, description)``. ``name``: ``bmmc500`` (the real
    bone-marrow subset), ``sim`` (the simulator, ``pbmc`` preset) or a path (``.h5mu``, or a folder
    with ``rna.h5ad`` and ``atac.h5ad``; raw counts are taken from ``.layers["counts"]`` when present).
    """
    import attune_lib as al

    if name == "sim":
        md = al.datasets.simulate_multiome("pbmc", n_cells=args.sim_cells, n_genes=args.sim_genes,
                                           n_peaks=args.sim_peaks, seed=0)
        desc = f"simulator pbmc ({args.sim_cells} cells x {args.sim_genes} genes x {args.sim_peaks} peaks)"
        return md, "cell_type", None, desc
    if name == "bmmc500":
        folder = _shared_data() / "bmmc500_openproblems"
        desc = "real bone marrow (500 cells, 2 donors, 21 types)"
    else:
        folder = Path(name)
        desc = f"user data {folder}"
    if folder.is_file() and folder.suffix == ".h5mu":
        md = al.datasets.read_h5mu(folder)
    elif (folder / "rna.h5ad").is_file() and (folder / "atac.h5ad").is_file():
        md = al.datasets.read_h5ad_pair(folder / "rna.h5ad", folder / "atac.h5ad")
    else:
        raise SystemExit(f"dataset {name!r}: {folder} is neither a .h5mu file nor a folder with rna.h5ad and "
                         "atac.h5ad")
    for mod in ("rna", "atac"):
        ad = md.mod[mod]
        if "counts" in ad.layers:
            ad.X = ad.layers["counts"].copy()
    md.update()
    ct = args.cell_type_key
    if ct not in md.mod["rna"].obs:
        raise SystemExit(f"dataset {name!r}: no cell-type column {ct!r} in rna.obs "
                         f"({list(md.mod['rna'].obs.columns)}); pass --cell-type-key")
    bk = args.batch_key if args.batch_key in md.mod["rna"].obs else None
    return md, ct, bk, desc


def prepare(md, batch_key: str | None, folder: Path, seed: int = 0):
    """Preprocess once (``attune_lib.pp``) and write the hand-off AnnData files; returns the MuData."""
    import anndata as ad
    import attune_lib as al
    import scipy.sparse as sp

    al.pp.preprocess(md, batch_key=batch_key, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    batch = (md.mod["rna"].obs[batch_key].astype(str).to_numpy() if batch_key
             else None)
    for mod in ("rna", "atac"):
        src = md.mod[mod]
        X = sp.csr_matrix(src.X, dtype="float32")
        out = ad.AnnData(X=X, obs={"batch": batch} if batch is not None else None)
        out.obs_names = src.obs_names.astype(str)
        out.var_names = src.var_names.astype(str)
        out.write_h5ad(folder / f"{mod}.h5ad")
    return md


def run_original(tf_python: Path, original: Path, handoff: Path, work: Path, seed: int, args,
                 batch_key: str | None):
    """Train the original in the TensorFlow env; returns (rna[E,N,d], atac[E,N,d], loss[E], meta)."""
    import numpy as np

    result = work / "original_result.npz"
    digest = hashlib.sha1(b"".join((handoff / f"{m}.h5ad").read_bytes() for m in ("rna", "atac"))).hexdigest()
    stamp = work / "handoff.sha1"
    fresh = result.exists() and stamp.exists() and stamp.read_text().strip() == digest
    if not (args.reuse and fresh):
        cmd = [str(tf_python), str(Path(__file__).resolve()), "--_worker", "--original", str(original),
               "--handoff", str(handoff), "--workdir", str(work), "--seed", str(seed),
               "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
               "--batch-col", "batch" if batch_key else "", "--threads", str(args.threads)]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED=str(seed), OMP_WAIT_POLICY="PASSIVE",
                   OMP_NUM_THREADS=str(args.threads), CUDA_VISIBLE_DEVICES="")
        log = work / "original.log"
        work.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as fh:
            res = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=str(work))
        if res.returncode != 0:
            tail = log.read_text()[-3000:]
            raise SystemExit(f"the original failed (seed {seed}); log {log}:\n{tail}")
        stamp.write_text(digest + "\n")  # --reuse accepts this run only for the same hand-off
    f = np.load(result)
    meta = json.loads((work / "original_meta.json").read_text())
    spe = int(f["steps_per_epoch"])
    losses = f["losses"].reshape(-1, 2)  # (steps, [teacher, student]) in call order
    per_step = losses.mean(1) / 2.0  # the port's scale: mean over both directions
    loss = per_step.reshape(args.epochs, spe).mean(1)
    return f["rna"], f["atac"], loss, meta


def _freeze_norm_and_dropout(module) -> None:
    """Keep every batch norm and dropout of ``module`` in inference mode, also inside ``train()``."""
    import torch.nn as nn
    from attune_lib.models._attune_nn import SparseFeatureBatchNorm

    def stay_eval(self, mode: bool = True):
        return nn.Module.train(self, False)

    for m in module.modules():
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, SparseFeatureBatchNorm, nn.Dropout)):
            m.train = types.MethodType(stay_eval, m)
            nn.Module.train(m, False)


def original_final_lr(args, steps_per_epoch: int) -> float:
    """Where the original's learning rate ends.

    It uses ``PolynomialDecay(lr, 300 * epochs, lr / 100)`` and calls ``apply_gradients`` four times
    per step (one per network), each advancing the schedule.
    """
    it = 4 * steps_per_epoch * args.epochs
    total = 300 * args.epochs
    return args.lr - (args.lr - args.lr * 1e-2) * min(it, total) / total


def run_port(md, seed: int, args, *, origmode: bool = False, lr_end: float | None = None):
    """Train the port with the paper's settings; returns (rna[E,N,d], atac[E,N,d], loss[E], train_s)."""
    import numpy as np
    import torch
    from attune_lib.models import Attune

    torch.set_num_threads(args.threads)
    Attune.setup_mudata(md)  # .X of both modalities: what the hand-off gave the original
    model = Attune(md, seed=seed, dropout_rate=PAPER["drop_rate"], temperature=PAPER["temperature"])
    if origmode:
        _freeze_norm_and_dropout(model.module)
    rna, atac = [], []

    def grab(trainer, epoch, record):
        rna.append(model.get_latent_representation(modality="rna"))
        atac.append(model.get_latent_representation(modality="atac"))

    t0 = time.perf_counter()
    model.train(max_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                lr_end=1e-6 if lr_end is None else lr_end, progress_bar=False, device="cpu", callbacks=[grab])
    train_s = time.perf_counter() - t0
    loss = model.history["loss"].to_numpy()
    return np.stack(rna), np.stack(atac), loss, train_s


def score(rna, atac, md, ct_key: str, seed: int = 0) -> dict[str, float]:
    """GLUE metrics (stacked) plus per-modality label MAP for one pair of embeddings."""
    import attune_lib as al

    ct = md.mod["rna"].obs[ct_key].astype(str).to_numpy()
    out = al.metrics.integration_metrics_from_embeddings(rna, atac, ct, rna_ref=md.mod["rna"].obsm["X_pca"],
                                         atac_ref=md.mod["atac"].obsm["X_lsi"], seed=seed)
    out["map_rna"] = al.metrics.mean_average_precision(rna, ct)
    out["map_atac"] = al.metrics.mean_average_precision(atac, ct)
    return out


def summarize(curves, epochs: int):
    """Final-epoch table: mean, SD, range per method and the port - original difference."""
    import numpy as np
    import pandas as pd

    last = curves[curves["epoch"] == epochs]
    rows = []
    cols = ("loss", *METRIC_COLS)
    for (ds, method), g in last.groupby(["dataset", "method"], sort=False):
        row = {"dataset": ds, "method": method, "n_seeds": g["seed"].nunique()}
        for c in cols:
            v = g[c].to_numpy(float)
            row[f"{c}_mean"], row[f"{c}_sd"] = float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
            row[f"{c}_min"], row[f"{c}_max"] = float(np.min(v)), float(np.max(v))
        rows.append(row)
    table = pd.DataFrame(rows)
    order = {m: i for i, m in enumerate(("original", "port", "port_origmode", "port_evalbn", "port_lr"))}
    ds_order = {d: i for i, d in enumerate(dict.fromkeys(curves["dataset"]))}
    table = table.sort_values(["dataset", "method"], key=lambda col: col.map(ds_order if col.name == "dataset"
                                                                             else order)).reset_index(drop=True)
    diffs = []
    for ds, g in table.groupby("dataset", sort=False):
        ref = g[g["method"] == "original"]
        if ref.empty:
            continue
        ref = ref.iloc[0]
        for _, r in g[g["method"] != "original"].iterrows():
            for c in cols:
                d = r[f"{c}_mean"] - ref[f"{c}_mean"]
                se = float(np.sqrt(r[f"{c}_sd"] ** 2 / r["n_seeds"] + ref[f"{c}_sd"] ** 2 / ref["n_seeds"]))
                disjoint = r[f"{c}_min"] > ref[f"{c}_max"] or r[f"{c}_max"] < ref[f"{c}_min"]
                diffs.append({"dataset": ds, "method": r["method"], "metric": c, "original": ref[f"{c}_mean"],
                              "other": r[f"{c}_mean"], "diff": d, "se_diff": se,
                              "beyond_seed_noise": (bool(abs(d) > 2 * se and disjoint)
                                                    if min(r["n_seeds"], ref["n_seeds"]) >= 2 else None)})
    return table, pd.DataFrame(diffs)


def markdown_table(table, diffs) -> str:
    """The side-by-side table as Markdown: mean ± SD over seeds; * marks a difference beyond seed noise."""
    show = ("foscttm", "map", "asw", "nc", "sas", "gc", "asw_batch", "map_rna", "map_atac", "loss")
    flag = {(r.dataset, r.method, r.metric): r.beyond_seed_noise for r in diffs.itertuples()} if len(diffs) else {}
    lines = ["| dataset | method | " + " | ".join(show) + " |", "|---|---|" + "---|" * len(show)]
    for r in table.itertuples():
        cells = []
        for c in show:
            m, s = getattr(r, f"{c}_mean"), getattr(r, f"{c}_sd")
            mark = "*" if flag.get((r.dataset, r.method, c)) else ""
            cells.append(f"{m:.3f} ± {s:.3f}{mark}")
        lines.append(f"| {r.dataset} | {r.method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(curves, path: Path) -> None:
    """Per dataset: loss and metrics by epoch, mean ± SD band over seeds, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ("loss", "foscttm", "map", "map_rna", "map_atac", "nc", "asw", "sas", "gc")
    datasets = list(dict.fromkeys(curves["dataset"]))
    fig, axes = plt.subplots(len(datasets), len(panels), figsize=(2.6 * len(panels), 2.4 * len(datasets)),
                             squeeze=False)
    colors = {"original": "tab:red", "port": "tab:blue", "port_origmode": "tab:green",
              "port_evalbn": "tab:purple", "port_lr": "tab:orange"}
    for i, ds in enumerate(datasets):
        d = curves[curves["dataset"] == ds]
        for j, c in enumerate(panels):
            ax = axes[i, j]
            for method, g in d.groupby("method", sort=False):
                s = g.groupby("epoch")[c].agg(["mean", "std"])
                ax.plot(s.index, s["mean"], color=colors.get(method), label=method, lw=1.4)
                ax.fill_between(s.index, s["mean"] - s["std"].fillna(0), s["mean"] + s["std"].fillna(0),
                                color=colors.get(method), alpha=0.2, lw=0)
            ax.set_title(f"{ds}: {c}", fontsize=8)
            ax.tick_params(labelsize=7)
            if i == len(datasets) - 1:
                ax.set_xlabel("epoch", fontsize=7)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--original", help="checkout of github.com/melobio/Attune (default $ATTUNE_ORIGINAL_DIR)")
    p.add_argument("--datasets", default="bmmc500,sim",
                   help="comma-separated: bmmc500, sim, or paths (.h5mu / folder with rna.h5ad + atac.h5ad)")
    p.add_argument("--data", action="append", default=[], help="add a user dataset (path); repeatable")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=PAPER["epochs"])
    p.add_argument("--batch-size", type=int, default=PAPER["batch_size"])
    p.add_argument("--lr", type=float, default=PAPER["lr"])
    p.add_argument("--variants", default="original,port,port_origmode",
                   help="comma-separated subset of original, port, port_origmode (the port with the "
                        "original's inference-mode batch norm/dropout and learning-rate end), port_evalbn "
                        "(only the former), port_lr (only the latter)")
    p.add_argument("--sim-cells", type=int, default=1000)
    p.add_argument("--sim-genes", type=int, default=400)
    p.add_argument("--sim-peaks", type=int, default=2000)
    p.add_argument("--cell-type-key", default="cell_type")
    p.add_argument("--batch-key", default="batch", help="obs column of batches (used when present)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--env", type=Path, default=DEFAULT_ENV, help="TensorFlow environment folder")
    p.add_argument("--python", default="python3.11", help="interpreter for creating the TensorFlow env")
    p.add_argument("--output", type=Path, default=DEFAULT_OUT)
    p.add_argument("--reuse", action="store_true",
                   help="reuse finished original runs found in --output (only those trained on the same hand-off)")
    p.add_argument("--from-curves", type=Path, nargs="+", metavar="CSV",
                   help="do not train: summarise existing curves.csv file(s) (e.g. runs made in parallel)")
    args = p.parse_args(argv)
    args.output = args.output.resolve()  # the TensorFlow worker runs in its own folder
    # spinning OpenMP threads stall on a shared, over-subscribed machine (benchmarks/README.md)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.from_curves:
        import pandas as pd

        args.output.mkdir(parents=True, exist_ok=True)
        curves = pd.concat([pd.read_csv(f) for f in args.from_curves], ignore_index=True)
        curves.to_csv(args.output / "curves.csv", index=False)
        report(curves, args)
        return

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in ("original", "port", "port_origmode", "port_evalbn", "port_lr")]
    if bad:
        raise SystemExit(f"--variants: unknown {bad}")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import pandas as pd

    original = find_original(args.original) if "original" in variants else None
    tf_python = ensure_tf_env(args.env, python=args.python) if original is not None else None
    names = [n.strip() for n in args.datasets.split(",") if n.strip()] + list(args.data)
    args.output.mkdir(parents=True, exist_ok=True)
    rows, runtimes = [], []
    for name in names:
        md, ct_key, batch_key, desc = load_data(name, args)
        label = name if name in ("bmmc500", "sim") else Path(name).stem
        ds_dir = args.output / label
        md = prepare(md, batch_key, ds_dir / "handoff")
        print(f"[{label}] {desc}: {md.mod['rna'].n_vars} genes, {md.mod['atac'].n_vars} peaks after "
              f"attune_lib.pp; batches: {batch_key or 'none'}", flush=True)
        spe = None
        for seed in args.seeds:
            runs = {}
            if "original" in variants:
                t0 = time.perf_counter()
                r, a, loss, meta = run_original(tf_python, original, ds_dir / "handoff", ds_dir / f"original_seed{seed}",
                                                seed, args, batch_key)
                spe = meta["steps_per_epoch"]
                runs["original"] = (r, a, loss, meta["train_s"])
                print(f"[{label}] original seed {seed}: {time.perf_counter() - t0:.0f} s; BN moving stats "
                      f"(max |mean|, max |var-1|): {meta['bn_moving_stats_max_abs_mean_and_var_minus_1']}", flush=True)
            if "port" in variants:
                runs["port"] = run_port(md, seed, args)
            if spe is None:
                sizes = (md.mod["rna"].obs[batch_key].value_counts() if batch_key else [md.n_obs])
                spe = int(sum(int(n) // args.batch_size for n in sizes))
            if "port_origmode" in variants:
                runs["port_origmode"] = run_port(md, seed, args, origmode=True,
                                                 lr_end=original_final_lr(args, spe))
            if "port_evalbn" in variants:  # only the inference-mode batch norm / dropout
                runs["port_evalbn"] = run_port(md, seed, args, origmode=True)
            if "port_lr" in variants:  # only the original's learning-rate end point
                runs["port_lr"] = run_port(md, seed, args, lr_end=original_final_lr(args, spe))
            for method, (r, a, loss, train_s) in runs.items():
                runtimes.append({"dataset": label, "method": method, "seed": seed, "train_s": train_s})
                for e in range(r.shape[0]):
                    m = score(r[e], a[e], md, ct_key, seed=0)
                    rows.append({"dataset": label, "method": method, "seed": seed, "epoch": e + 1,
                                 "loss": float(loss[e]), **m})
                last = rows[-1]
                print(f"[{label}] {method} seed {seed} ({train_s:.0f} s): FOSCTTM {last['foscttm']:.4f} "
                      f"MAP {last['map']:.3f} NC {last['nc']:.3f} ASW {last['asw']:.3f}", flush=True)
            pd.DataFrame(rows).to_csv(args.output / "curves.csv", index=False)
    curves = pd.DataFrame(rows)
    curves.to_csv(args.output / "curves.csv", index=False)
    pd.DataFrame(runtimes).to_csv(args.output / "runtimes.csv", index=False)
    report(curves, args)


def report(curves, args) -> None:
    """Write ``table.csv``, ``table.md``, ``differences.csv`` and ``curves.png``; print the table."""
    table, diffs = summarize(curves, int(curves["epoch"].max()))
    table.to_csv(args.output / "table.csv", index=False)
    diffs.to_csv(args.output / "differences.csv", index=False)
    plot_curves(curves, args.output / "curves.png")
    md_table = markdown_table(table, diffs)
    (args.output / "table.md").write_text(md_table + "\n")
    print("\nFinal epoch, mean ± SD over seeds (* = difference to the original beyond seed noise: "
          "|diff| > 2 SE and seed ranges disjoint)\n")
    print(md_table)
    if len(diffs):
        print("\nDifferences beyond seed noise:")
        print(diffs[diffs["beyond_seed_noise"].fillna(False).astype(bool)].to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    print(f"\nwritten: {args.output}/{{curves.csv,curves.png,table.csv,table.md,differences.csv}}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_worker":
        _worker(sys.argv[2:])
    else:
        main()
