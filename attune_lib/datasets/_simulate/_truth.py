"""Assembly of ``mdata.uns["truth"]``: links, decoys, TF peaks, programs, lagging genes, the Gli3-like
gene, markers, the pseudotime root, the boundary and the call's parameters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import WINDOW_BP

__all__ = ["truth_dict"]


def truth_dict(spec, cells, genome, tf_pos, pchic, obs_names, params) -> dict:
    """The ground-truth dict stored in ``mdata.uns["truth"]`` (see ``simulate_multiome``).

    Parameters
    ----------
    spec
        The scenario.
    cells, genome
        Outputs of the cell and genome simulation.
    tf_pos
        Planted motif positions and strands (``None`` without sequences).
    pchic
        The PCHi-C-like table.
    obs_names
        Cell names.
    params
        The call's parameters.
    """
    genes, peaks = genome["genes"].astype(str), genome["peak_names"].astype(str)
    K = len(spec.programs)
    links = pd.DataFrame(
        {
            "gene": genes[genome["link_g"]],
            "peak": peaks[genome["link_p"]],
            "weight": genome["link_w"].astype(np.float64),
            "distance": genome["link_d"].astype(np.int64),
            "kind": genome["link_kind"].astype(str),
        }
    )
    links = links.sort_values(["gene", "distance"]).reset_index(drop=True)
    decoys = pd.DataFrame(
        {
            "gene": genes[genome["decoy_g"]],
            "peak": peaks[genome["decoy_p"]],
            "distance": genome["decoy_d"].astype(np.int64),
        }
    ).sort_values(["gene", "distance"]).reset_index(drop=True)
    motif_ids = genome["tf_motif_ids"]
    tf_peaks = np.flatnonzero(genome["tf_of_peak"] >= 0)
    tf_idx = genome["tf_of_peak"][tf_peaks]
    tf_names = np.array(genome["tf_names"], dtype=object)[tf_idx].astype(str)
    tf_peak = pd.DataFrame(
        {
            "tf": tf_names,
            "peak": peaks[tf_peaks],
            "motif_id": [motif_ids[t] for t in tf_names],
            "motif_name": [spec.tfs[t][2] for t in tf_names],
            "position": tf_pos["position"][tf_peaks] if tf_pos else np.full(len(tf_peaks), -1),
            "strand": tf_pos["strand"][tf_peaks].astype(str)
            if tf_pos
            else np.full(len(tf_peaks), "."),
        }
    )
    tfs = pd.DataFrame(
        {
            "tf": list(spec.tfs),
            "motif_id": [v[1] for v in spec.tfs.values()],
            "motif_name": [v[2] for v in spec.tfs.values()],
            "program": [v[0] for v in spec.tfs.values()],
        }
    )
    prog_names = np.array(
        [p.name for p in spec.programs] + ["gli3_like", "housekeeping"], dtype=object
    )
    program = genome["program"]
    drv = genome["gene_driver"]
    regulator = np.where(
        drv > K, np.array([""] + [""] * K + genome["tf_names"], dtype=object)[drv], ""
    )
    gene_program = pd.DataFrame(
        {
            "gene": genes,
            "program": prog_names[
                np.where(program >= 0, program, np.where(program == -2, K, K + 1))
            ].astype(str),
            "regulator": np.where(genome["role"] == "tf", "", regulator).astype(str),
            "role": genome["role"].astype(str),
        }
    )
    lag = genome["lag"]
    lagging = pd.DataFrame({"gene": genes[lag > 0], "lag": lag[lag > 0].astype(np.float64)})
    if spec.gli3:
        g3 = genome["gli3"]
        gli3_like = {
            "gene": str(genes[g3["gene"]]),
            "early_peaks": peaks[g3["early"]],
            "late_peaks": peaks[g3["late"]],
            "early_tfs": np.array(spec.gli3["early_tfs"], dtype=str),
            "late_tf": spec.gli3["late_tf"],
            "late_motif_id": spec.tfs[spec.gli3["late_tf"]][1],
            "early_motif_ids": np.array(
                [spec.tfs[t][1] for t in spec.gli3["early_tfs"]], dtype=str
            ),
            "lag": float(spec.gli3["lag"]),
        }
    else:
        gli3_like = {
            "gene": "",
            "early_peaks": np.array([], dtype=str),
            "late_peaks": np.array([], dtype=str),
            "early_tfs": np.array([], dtype=str),
            "late_tf": "",
            "late_motif_id": "",
            "early_motif_ids": np.array([], dtype=str),
            "lag": 0.0,
        }
    prog_index = {p.name: k for k, p in enumerate(spec.programs)}
    markers = {}
    role = genome["role"]
    for ct, progs in spec.marker_programs.items():
        ks = [prog_index[p] for p in progs]
        sel = np.isin(program, ks) & (role != "housekeeping")
        ordered = np.concatenate(
            [np.flatnonzero(sel & (role != "program")), np.flatnonzero(sel & (role == "program"))]
        )
        markers[ct] = genes[ordered]
    if spec.trajectory:
        start_cell = str(obs_names[int(np.argmin(cells["t"]))])
    else:
        start_cell = ""
    boundary = np.array(spec.boundary if spec.boundary else (np.nan, np.nan), dtype=np.float64)
    return {
        "preset": spec.name,
        "seed": int(params["seed"]),
        "size": params["size"],
        "params": dict(params),
        "window_bp": int(WINDOW_BP),
        "links": links,
        "decoys": decoys,
        "tf_peak": tf_peak.reset_index(drop=True),
        "tfs": tfs,
        "gene_program": gene_program,
        "pchic": pchic,
        "lagging_genes": lagging,
        "gli3_like": gli3_like,
        "markers": markers,
        "start_cell": start_cell,
        "boundary": boundary,
        "boundary_delay": float(spec.boundary_delay if spec.boundary else 0.0),
    }
