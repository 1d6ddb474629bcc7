"""A synthetic B2B SaaS customer base with known churn probabilities and drivers.

`generate_demo` writes CRM, product-analytics, helpdesk and billing exports plus the ground truth
they were drawn from, so every claim of the product (accuracy, calibration, drivers) can be
checked against the truth; `truth_contender` brings that truth to training as the "oracle". The
generating model is documented in docs/DEMO_DATA.md.
"""

from healthscore.demo.churn_model import DRIVER_FAMILIES
from healthscore.demo.generator import DemoSummary, generate_demo
from healthscore.demo.truth import ORACLE, truth_contender

__all__ = ["DRIVER_FAMILIES", "ORACLE", "DemoSummary", "generate_demo", "truth_contender"]
