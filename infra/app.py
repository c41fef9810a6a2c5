"""CDK app entry point (`cdk.json`: `.venv/bin/python -m infra.app`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from infra.config import ConfigError, FulfillmentConfig
from infra.stack import FulfillmentStack

ROOT = Path(__file__).resolve().parent.parent
ARTIFACT_DIR = ROOT / "build" / "function"


def build_app(
    context: dict[str, Any] | None = None,
    *,
    code_dir: Path = ARTIFACT_DIR,
    outdir: str = "cdk.out",
) -> tuple[App, FulfillmentStack]:
    """The app with its one stack and cdk-nag's AWS Solutions checks run at every synth."""
    if not (code_dir / "fulfillment" / "api.py").is_file():
        raise ConfigError(f"no function artifact in {code_dir}: run `make build` first")
    app = App(outdir=outdir, context=context)
    config = FulfillmentConfig.from_context(app.node)
    stack = FulfillmentStack(
        app,
        config.stack_name,
        config=config,
        code_dir=code_dir,
        env=Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
            region=os.environ.get("CDK_DEFAULT_REGION"),
        ),
        description="AWS Marketplace SaaS fulfillment endpoint",
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def main() -> None:
    try:
        app, _ = build_app()
    except ConfigError as error:
        sys.exit(f"configuration error: {error}")
    app.synth()


if __name__ == "__main__":
    main()
