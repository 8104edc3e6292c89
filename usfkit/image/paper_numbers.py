"""The paper's image-benchmark numbers, as printed in arXiv 2510.09452 (Abu Zaid et al.,
"On Uniformly Scaling Flows: A Density-Aligned Approach to Deep One-Class Classification"):
Table 1 (§5.2.2), Tables 2–5 (App. F.1) and the ablation numbers quoted in §5.2.3.

Values are AUROC in % as (mean, std over three seeds); keys are ``(coupling, architecture)`` with
``"affine"`` = the paper's "BASE FLOW" columns and ``"additive_lu"`` = its "USF" columns (additive
coupling + LU maps).  Transcribed from the paper's text and checked cell by cell against it (372
cells); ``tests/test_image_benchmark.py`` checks that each table's Average row is the mean of its class
rows, as the paper computes it.  There is no generator script: edit only against the paper.
"""

__all__ = ["TABLE1", "PER_CLASS", "LOGDET_PRIOR_UFLOW", "RESNET18_UFLOW", "FIG4_UFLOW_DELTAS", "class_averaged"]

# Table 1: class-averaged (mean, std); key: (dataset, metric)
TABLE1 = {
    ('mvtec', 'image_auroc'): {("affine", "fastflow"): (91.3, 1.5), ("affine", "uflow"): (92.7, 4.6), ("affine", "cflow"): (72.5, 12.8),
                               ("additive_lu", "fastflow"): (91.0, 0.9), ("additive_lu", "uflow"): (94.5, 0.6), ("additive_lu", "cflow"): (90.8, 1.1)},
    ('mvtec', 'pixel_auroc'): {("affine", "fastflow"): (95.8, 0.4), ("affine", "uflow"): (95.9, 2.8), ("affine", "cflow"): (95.4, 1.0),
                               ("additive_lu", "fastflow"): (96.8, 0.2), ("additive_lu", "uflow"): (97.0, 0.4), ("additive_lu", "cflow"): (96.6, 0.0)},
    ('visa', 'image_auroc'): {("affine", "fastflow"): (88.0, 1.7), ("affine", "uflow"): (84.6, 6.7), ("affine", "cflow"): (82.5, 8.3),
                              ("additive_lu", "fastflow"): (87.7, 0.6), ("additive_lu", "uflow"): (85.6, 0.6), ("additive_lu", "cflow"): (88.4, 0.9)},
    ('visa', 'pixel_auroc'): {("affine", "fastflow"): (96.3, 0.7), ("affine", "uflow"): (95.8, 3.8), ("affine", "cflow"): (97.8, 0.5),
                              ("additive_lu", "fastflow"): (98.8, 0.0), ("additive_lu", "uflow"): (95.7, 1.8), ("additive_lu", "cflow"): (98.2, 0.0)},
}

# Tables 2-5 per class; key: (dataset, metric) -> {class: {(coupling, arch): (mean, std)}}, "Average" row included
PER_CLASS = {
    ('mvtec', 'image_auroc'): {
        'bottle': {("affine", "fastflow"): (100.0, 0.0), ("affine", "uflow"): (99.8, 0.3), ("affine", "cflow"): (90.7, 8.9),
                   ("additive_lu", "fastflow"): (98.9, 0.2), ("additive_lu", "uflow"): (100.0, 0.0), ("additive_lu", "cflow"): (100.0, 0.0)},
        'cable': {("affine", "fastflow"): (91.8, 0.8), ("affine", "uflow"): (85.8, 7.1), ("affine", "cflow"): (85.7, 6.8),
                  ("additive_lu", "fastflow"): (71.0, 2.3), ("additive_lu", "uflow"): (94.0, 0.3), ("additive_lu", "cflow"): (86.2, 1.1)},
        'capsule': {("affine", "fastflow"): (88.9, 1.7), ("affine", "uflow"): (94.1, 2.1), ("affine", "cflow"): (83.5, 7.9),
                    ("additive_lu", "fastflow"): (84.7, 1.2), ("additive_lu", "uflow"): (80.3, 0.9), ("additive_lu", "cflow"): (87.2, 0.6)},
        'carpet': {("affine", "fastflow"): (98.0, 0.6), ("affine", "uflow"): (100.0, 0.0), ("affine", "cflow"): (78.4, 8.4),
                   ("additive_lu", "fastflow"): (96.8, 0.2), ("additive_lu", "uflow"): (99.9, 0.0), ("additive_lu", "cflow"): (95.9, 1.3)},
        'grid': {("affine", "fastflow"): (97.7, 0.8), ("affine", "uflow"): (98.8, 0.5), ("affine", "cflow"): (97.7, 1.5),
                 ("additive_lu", "fastflow"): (95.0, 0.8), ("additive_lu", "uflow"): (99.3, 0.9), ("additive_lu", "cflow"): (72.1, 1.1)},
        'hazelnut': {("affine", "fastflow"): (78.0, 5.7), ("affine", "uflow"): (97.7, 1.2), ("affine", "cflow"): (65.4, 26.4),
                     ("additive_lu", "fastflow"): (99.5, 0.1), ("additive_lu", "uflow"): (100.0, 0.0), ("additive_lu", "cflow"): (100.0, 0.0)},
        'leather': {("affine", "fastflow"): (100.0, 0.0), ("affine", "uflow"): (100.0, 0.0), ("affine", "cflow"): (96.4, 5.1),
                    ("additive_lu", "fastflow"): (99.7, 0.1), ("additive_lu", "uflow"): (100.0, 0.0), ("additive_lu", "cflow"): (100.0, 0.0)},
        'metal_nut': {("affine", "fastflow"): (97.1, 1.4), ("affine", "uflow"): (82.7, 29.9), ("affine", "cflow"): (32.6, 42.6),
                      ("additive_lu", "fastflow"): (95.5, 0.2), ("additive_lu", "uflow"): (100.0, 0.0), ("additive_lu", "cflow"): (99.3, 0.2)},
        'pill': {("affine", "fastflow"): (92.5, 0.5), ("affine", "uflow"): (94.1, 2.9), ("affine", "cflow"): (84.5, 4.0),
                 ("additive_lu", "fastflow"): (88.2, 1.0), ("additive_lu", "uflow"): (96.3, 0.4), ("additive_lu", "cflow"): (84.3, 3.7)},
        'screw': {("affine", "fastflow"): (67.7, 2.4), ("affine", "uflow"): (71.0, 4.1), ("affine", "cflow"): (83.8, 10.7),
                  ("additive_lu", "fastflow"): (83.9, 1.2), ("additive_lu", "uflow"): (71.5, 0.8), ("additive_lu", "cflow"): (61.9, 4.7)},
        'tile': {("affine", "fastflow"): (97.8, 0.1), ("affine", "uflow"): (99.9, 0.1), ("affine", "cflow"): (40.3, 8.5),
                 ("additive_lu", "fastflow"): (94.1, 0.9), ("additive_lu", "uflow"): (100.0, 0.0), ("additive_lu", "cflow"): (100.0, 0.0)},
        'toothbrush': {("affine", "fastflow"): (72.3, 5.5), ("affine", "uflow"): (86.5, 9.6), ("affine", "cflow"): (35.3, 26.1),
                       ("additive_lu", "fastflow"): (92.7, 0.6), ("additive_lu", "uflow"): (91.8, 0.6), ("additive_lu", "cflow"): (96.9, 1.5)},
        'transistor': {("affine", "fastflow"): (94.3, 1.9), ("affine", "uflow"): (84.5, 9.1), ("affine", "cflow"): (72.7, 20.1),
                       ("additive_lu", "fastflow"): (84.9, 0.6), ("additive_lu", "uflow"): (95.7, 1.1), ("additive_lu", "cflow"): (86.1, 2.4)},
        'wood': {("affine", "fastflow"): (98.1, 0.3), ("affine", "uflow"): (99.4, 0.1), ("affine", "cflow"): (53.6, 7.4),
                 ("additive_lu", "fastflow"): (98.2, 0.2), ("additive_lu", "uflow"): (96.9, 3.2), ("additive_lu", "cflow"): (99.1, 0.1)},
        'zipper': {("affine", "fastflow"): (95.9, 0.1), ("affine", "uflow"): (95.9, 1.7), ("affine", "cflow"): (86.2, 7.3),
                   ("additive_lu", "fastflow"): (81.9, 3.2), ("additive_lu", "uflow"): (92.0, 1.1), ("additive_lu", "cflow"): (92.8, 0.2)},
        'Average': {("affine", "fastflow"): (91.3, 1.5), ("affine", "uflow"): (92.7, 4.6), ("affine", "cflow"): (72.5, 12.8),
                    ("additive_lu", "fastflow"): (91.0, 0.9), ("additive_lu", "uflow"): (94.5, 0.6), ("additive_lu", "cflow"): (90.8, 1.1)},
    },
    ('mvtec', 'pixel_auroc'): {
        'bottle': {("affine", "fastflow"): (97.4, 0.2), ("affine", "uflow"): (96.9, 0.9), ("affine", "cflow"): (97.7, 0.2),
                   ("additive_lu", "fastflow"): (97.8, 0.1), ("additive_lu", "uflow"): (98.7, 0.1), ("additive_lu", "cflow"): (98.3, 0.0)},
        'cable': {("affine", "fastflow"): (94.9, 0.2), ("affine", "uflow"): (95.6, 2.5), ("affine", "cflow"): (94.9, 1.4),
                  ("additive_lu", "fastflow"): (93.8, 1.1), ("additive_lu", "uflow"): (97.2, 0.1), ("additive_lu", "cflow"): (95.2, 0.1)},
        'capsule': {("affine", "fastflow"): (97.7, 0.6), ("affine", "uflow"): (98.8, 0.0), ("affine", "cflow"): (98.6, 0.2),
                    ("additive_lu", "fastflow"): (98.8, 0.0), ("additive_lu", "uflow"): (98.1, 0.0), ("additive_lu", "cflow"): (98.8, 0.0)},
        'carpet': {("affine", "fastflow"): (98.6, 0.1), ("affine", "uflow"): (99.3, 0.1), ("affine", "cflow"): (98.8, 0.1),
                   ("additive_lu", "fastflow"): (98.7, 0.0), ("additive_lu", "uflow"): (99.5, 0.0), ("additive_lu", "cflow"): (98.8, 0.0)},
        'grid': {("affine", "fastflow"): (98.0, 0.4), ("affine", "uflow"): (97.8, 0.1), ("affine", "cflow"): (97.4, 0.1),
                 ("additive_lu", "fastflow"): (98.3, 0.1), ("additive_lu", "uflow"): (97.4, 0.1), ("additive_lu", "cflow"): (96.7, 0.1)},
        'hazelnut': {("affine", "fastflow"): (93.3, 1.0), ("affine", "uflow"): (98.9, 0.2), ("affine", "cflow"): (97.0, 0.7),
                     ("additive_lu", "fastflow"): (98.3, 0.0), ("additive_lu", "uflow"): (99.4, 0.0), ("additive_lu", "cflow"): (98.5, 0.0)},
        'leather': {("affine", "fastflow"): (99.6, 0.0), ("affine", "uflow"): (99.3, 0.1), ("affine", "cflow"): (99.4, 0.1),
                    ("additive_lu", "fastflow"): (98.9, 0.2), ("additive_lu", "uflow"): (99.5, 0.1), ("additive_lu", "cflow"): (99.1, 0.0)},
        'metal_nut': {("affine", "fastflow"): (96.0, 0.3), ("affine", "uflow"): (80.2, 28.8), ("affine", "cflow"): (92.3, 5.1),
                      ("additive_lu", "fastflow"): (97.3, 0.1), ("additive_lu", "uflow"): (97.8, 0.2), ("additive_lu", "cflow"): (97.5, 0.1)},
        'pill': {("affine", "fastflow"): (96.9, 0.4), ("affine", "uflow"): (98.2, 0.9), ("affine", "cflow"): (97.2, 0.4),
                 ("additive_lu", "fastflow"): (97.7, 0.0), ("additive_lu", "uflow"): (97.8, 0.1), ("additive_lu", "cflow"): (98.0, 0.0)},
        'screw': {("affine", "fastflow"): (84.5, 1.9), ("affine", "uflow"): (96.5, 1.1), ("affine", "cflow"): (97.5, 0.4),
                  ("additive_lu", "fastflow"): (98.3, 0.1), ("additive_lu", "uflow"): (93.9, 2.9), ("additive_lu", "cflow"): (96.8, 0.1)},
        'tile': {("affine", "fastflow"): (94.4, 0.3), ("affine", "uflow"): (96.8, 0.4), ("affine", "cflow"): (94.2, 0.7),
                 ("additive_lu", "fastflow"): (92.1, 0.2), ("additive_lu", "uflow"): (97.0, 0.3), ("additive_lu", "cflow"): (95.8, 0.0)},
        'toothbrush': {("affine", "fastflow"): (96.3, 0.3), ("affine", "uflow"): (97.8, 1.6), ("affine", "cflow"): (97.6, 0.3),
                       ("additive_lu", "fastflow"): (98.9, 0.0), ("additive_lu", "uflow"): (99.0, 0.1), ("additive_lu", "cflow"): (98.4, 0.0)},
        'transistor': {("affine", "fastflow"): (96.4, 0.4), ("affine", "uflow"): (87.5, 5.2), ("affine", "cflow"): (84.6, 2.2),
                       ("additive_lu", "fastflow"): (90.8, 0.1), ("additive_lu", "uflow"): (87.3, 0.9), ("additive_lu", "cflow"): (85.9, 0.2)},
        'wood': {("affine", "fastflow"): (95.3, 0.3), ("affine", "uflow"): (97.1, 0.1), ("affine", "cflow"): (87.4, 2.3),
                 ("additive_lu", "fastflow"): (94.2, 0.2), ("additive_lu", "uflow"): (96.7, 0.4), ("additive_lu", "cflow"): (94.3, 0.0)},
        'zipper': {("affine", "fastflow"): (97.7, 0.2), ("affine", "uflow"): (97.5, 0.2), ("affine", "cflow"): (96.7, 1.4),
                   ("additive_lu", "fastflow"): (97.7, 0.2), ("additive_lu", "uflow"): (95.4, 0.4), ("additive_lu", "cflow"): (97.0, 0.0)},
        'Average': {("affine", "fastflow"): (95.8, 0.4), ("affine", "uflow"): (95.9, 2.8), ("affine", "cflow"): (95.4, 1.0),
                    ("additive_lu", "fastflow"): (96.8, 0.2), ("additive_lu", "uflow"): (97.0, 0.4), ("additive_lu", "cflow"): (96.6, 0.0)},
    },
    ('visa', 'image_auroc'): {
        'candle': {("affine", "fastflow"): (96.5, 0.3), ("affine", "uflow"): (92.7, 1.5), ("affine", "cflow"): (91.2, 2.8),
                   ("additive_lu", "fastflow"): (84.9, 1.1), ("additive_lu", "uflow"): (84.1, 2.0), ("additive_lu", "cflow"): (94.6, 0.4)},
        'capsules': {("affine", "fastflow"): (73.9, 1.9), ("affine", "uflow"): (74.2, 6.5), ("affine", "cflow"): (77.6, 14.8),
                     ("additive_lu", "fastflow"): (75.5, 0.4), ("additive_lu", "uflow"): (79.7, 0.8), ("additive_lu", "cflow"): (70.8, 5.4)},
        'cashew': {("affine", "fastflow"): (88.4, 2.2), ("affine", "uflow"): (93.7, 1.5), ("affine", "cflow"): (96.7, 1.2),
                   ("additive_lu", "fastflow"): (90.6, 0.7), ("additive_lu", "uflow"): (94.7, 0.5), ("additive_lu", "cflow"): (95.9, 0.6)},
        'chewinggum': {("affine", "fastflow"): (98.2, 0.3), ("affine", "uflow"): (98.5, 0.5), ("affine", "cflow"): (99.6, 0.1),
                       ("additive_lu", "fastflow"): (99.4, 0.1), ("additive_lu", "uflow"): (98.6, 0.3), ("additive_lu", "cflow"): (99.6, 0.1)},
        'fryum': {("affine", "fastflow"): (89.5, 5.0), ("affine", "uflow"): (88.5, 1.5), ("affine", "cflow"): (52.2, 18.6),
                  ("additive_lu", "fastflow"): (92.8, 0.5), ("additive_lu", "uflow"): (86.0, 0.2), ("additive_lu", "cflow"): (84.9, 0.5)},
        'macaroni1': {("affine", "fastflow"): (87.8, 2.9), ("affine", "uflow"): (79.8, 22.2), ("affine", "cflow"): (71.4, 10.7),
                      ("additive_lu", "fastflow"): (88.8, 0.5), ("additive_lu", "uflow"): (77.6, 0.3), ("additive_lu", "cflow"): (89.3, 0.2)},
        'macaroni2': {("affine", "fastflow"): (67.8, 2.5), ("affine", "uflow"): (63.5, 13.6), ("affine", "cflow"): (78.6, 18.2),
                      ("additive_lu", "fastflow"): (80.5, 0.5), ("additive_lu", "uflow"): (74.8, 1.2), ("additive_lu", "cflow"): (71.6, 1.4)},
        'pcb1': {("affine", "fastflow"): (87.9, 1.4), ("affine", "uflow"): (76.8, 15.2), ("affine", "cflow"): (87.8, 5.4),
                 ("additive_lu", "fastflow"): (83.8, 1.4), ("additive_lu", "uflow"): (83.1, 0.2), ("additive_lu", "cflow"): (92.7, 0.4)},
        'pcb2': {("affine", "fastflow"): (87.7, 0.8), ("affine", "uflow"): (80.8, 7.1), ("affine", "cflow"): (82.9, 4.7),
                 ("additive_lu", "fastflow"): (85.7, 0.9), ("additive_lu", "uflow"): (76.6, 0.4), ("additive_lu", "cflow"): (86.3, 0.8)},
        'pcb3': {("affine", "fastflow"): (86.9, 1.3), ("affine", "uflow"): (80.5, 8.8), ("affine", "cflow"): (71.6, 11.5),
                 ("additive_lu", "fastflow"): (81.4, 0.3), ("additive_lu", "uflow"): (85.5, 1.2), ("additive_lu", "cflow"): (79.5, 0.6)},
        'pcb4': {("affine", "fastflow"): (96.2, 0.2), ("affine", "uflow"): (90.4, 1.8), ("affine", "cflow"): (96.1, 1.2),
                 ("additive_lu", "fastflow"): (92.5, 0.6), ("additive_lu", "uflow"): (88.7, 0.5), ("additive_lu", "cflow"): (97.3, 0.4)},
        'pipe_fryum': {("affine", "fastflow"): (94.9, 1.7), ("affine", "uflow"): (95.3, 0.6), ("affine", "cflow"): (84.8, 9.9),
                       ("additive_lu", "fastflow"): (96.7, 0.1), ("additive_lu", "uflow"): (97.9, 0.1), ("additive_lu", "cflow"): (98.6, 0.1)},
        'Average': {("affine", "fastflow"): (88.0, 1.7), ("affine", "uflow"): (84.6, 6.7), ("affine", "cflow"): (82.5, 8.3),
                    ("additive_lu", "fastflow"): (87.7, 0.6), ("additive_lu", "uflow"): (85.6, 0.6), ("additive_lu", "cflow"): (88.4, 0.9)},
    },
    ('visa', 'pixel_auroc'): {
        'candle': {("affine", "fastflow"): (98.0, 0.4), ("affine", "uflow"): (99.0, 0.1), ("affine", "cflow"): (99.0, 0.0),
                   ("additive_lu", "fastflow"): (99.1, 0.0), ("additive_lu", "uflow"): (94.8, 3.5), ("additive_lu", "cflow"): (99.0, 0.0)},
        'capsules': {("affine", "fastflow"): (98.0, 0.1), ("affine", "uflow"): (95.7, 3.5), ("affine", "cflow"): (96.5, 0.7),
                     ("additive_lu", "fastflow"): (99.2, 0.0), ("additive_lu", "uflow"): (98.2, 0.1), ("additive_lu", "cflow"): (97.2, 0.0)},
        'cashew': {("affine", "fastflow"): (98.2, 0.3), ("affine", "uflow"): (99.4, 0.1), ("affine", "cflow"): (98.3, 0.3),
                   ("additive_lu", "fastflow"): (98.8, 0.0), ("additive_lu", "uflow"): (99.3, 0.1), ("additive_lu", "cflow"): (98.4, 0.0)},
        'chewinggum': {("affine", "fastflow"): (98.9, 0.1), ("affine", "uflow"): (99.2, 0.1), ("affine", "cflow"): (99.0, 0.2),
                       ("additive_lu", "fastflow"): (99.4, 0.0), ("additive_lu", "uflow"): (99.3, 0.2), ("additive_lu", "cflow"): (99.4, 0.0)},
        'fryum': {("affine", "fastflow"): (84.6, 4.6), ("affine", "uflow"): (95.5, 0.5), ("affine", "cflow"): (97.1, 0.8),
                  ("additive_lu", "fastflow"): (97.1, 0.0), ("additive_lu", "uflow"): (96.3, 0.1), ("additive_lu", "cflow"): (97.0, 0.1)},
        'macaroni1': {("affine", "fastflow"): (97.8, 0.7), ("affine", "uflow"): (94.0, 9.1), ("affine", "cflow"): (97.3, 0.6),
                      ("additive_lu", "fastflow"): (99.7, 0.0), ("additive_lu", "uflow"): (88.3, 8.4), ("additive_lu", "cflow"): (99.1, 0.0)},
        'macaroni2': {("affine", "fastflow"): (94.5, 0.3), ("affine", "uflow"): (81.9, 20.2), ("affine", "cflow"): (97.1, 1.3),
                      ("additive_lu", "fastflow"): (99.1, 0.0), ("additive_lu", "uflow"): (82.6, 8.0), ("additive_lu", "cflow"): (98.3, 0.1)},
        'pcb1': {("affine", "fastflow"): (99.1, 0.1), ("affine", "uflow"): (95.1, 7.1), ("affine", "cflow"): (99.3, 0.1),
                 ("additive_lu", "fastflow"): (99.2, 0.0), ("additive_lu", "uflow"): (99.4, 0.0), ("additive_lu", "cflow"): (99.3, 0.0)},
        'pcb2': {("affine", "fastflow"): (96.7, 0.4), ("affine", "uflow"): (97.2, 0.7), ("affine", "cflow"): (97.4, 0.4),
                 ("additive_lu", "fastflow"): (98.3, 0.1), ("additive_lu", "uflow"): (96.3, 0.3), ("additive_lu", "cflow"): (96.7, 0.0)},
        'pcb3': {("affine", "fastflow"): (96.6, 0.2), ("affine", "uflow"): (97.2, 0.9), ("affine", "cflow"): (97.0, 0.4),
                 ("additive_lu", "fastflow"): (98.7, 0.0), ("additive_lu", "uflow"): (96.3, 1.4), ("additive_lu", "cflow"): (97.3, 0.0)},
        'pcb4': {("affine", "fastflow"): (97.5, 0.3), ("affine", "uflow"): (96.2, 2.5), ("affine", "cflow"): (97.2, 0.6),
                 ("additive_lu", "fastflow"): (97.2, 0.1), ("additive_lu", "uflow"): (98.5, 0.0), ("additive_lu", "cflow"): (97.7, 0.1)},
        'pipe_fryum': {("affine", "fastflow"): (96.0, 1.0), ("affine", "uflow"): (98.9, 0.6), ("affine", "cflow"): (98.8, 0.1),
                       ("additive_lu", "fastflow"): (99.2, 0.0), ("additive_lu", "uflow"): (99.2, 0.0), ("additive_lu", "cflow"): (99.0, 0.0)},
        'Average': {("affine", "fastflow"): (96.3, 0.7), ("affine", "uflow"): (95.8, 3.8), ("affine", "cflow"): (97.8, 0.5),
                    ("additive_lu", "fastflow"): (98.8, 0.0), ("additive_lu", "uflow"): (95.7, 1.8), ("additive_lu", "cflow"): (98.2, 0.0)},
    },
}

# §5.2.3: U-Flow on MVTec AD, USF variant without -> with the log-det prior; (mean, std) in %
LOGDET_PRIOR_UFLOW = {"image_auroc": ((94.50, 0.40), (94.63, 0.22)), "pixel_auroc": ((96.97, 0.21), (96.55, 0.13))}
# §5.2.3: U-Flow with a ResNet-18 backbone on MVTec AD; (mean, std) in % per coupling.  The paper prints
# "85.79 ± 10.70 -> 84.15 ± 13.67" (image) and "94.83 ± 5.28 -> 94.95 ± 3.78" (pixel) without saying which
# side is which; its sentence ("a clear advantage of USF over non-USF at image-level, but a slightly weaker
# pixel-level performance") holds only if these arrows run USF -> non-USF (unlike the log-det-prior
# sentence before it), so that is how they are read here.  The direction is inferred, not stated.
RESNET18_UFLOW = {"image_auroc": {"additive_lu": (85.79, 10.70), "affine": (84.15, 13.67)},
                  "pixel_auroc": {"additive_lu": (94.83, 5.28), "affine": (94.95, 3.78)}}
# §5.2.3 / Figure 4: U-Flow, mean over MVTec AD classes of the change against affine (image AUROC, %)
FIG4_UFLOW_DELTAS = {"additive": {"d_mean": 2.09, "d_std": -3.93}, "additive_lu": {"d_mean": 1.83, "d_std": -3.96}}


def class_averaged(dataset: str, metric: str, classes=None) -> dict:
    """The paper's class-averaged ``(mean, std)`` per ``(coupling, arch)`` over ``classes`` (Table 1 when
    ``classes`` is None or all of them; else the mean of Tables 2-5's rows for those classes)."""
    table = PER_CLASS[(dataset, metric)]
    all_classes = [c for c in table if c != "Average"]
    if classes is None or set(classes) >= set(all_classes):
        return dict(TABLE1[(dataset, metric)])
    rows = [table[c] for c in classes if c in table]
    if not rows:
        return {}
    n = len(rows)
    return {col: (round(sum(r[col][0] for r in rows) / n, 2), round(sum(r[col][1] for r in rows) / n, 2))
            for col in rows[0]}
