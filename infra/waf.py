"""A regional WebACL in front of the API stage: a per-IP rate rule and AWS's common rules."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

COUNTED_COMMON_RULES = ("SizeRestrictions_BODY", "CrossSiteScripting_BODY")


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
    )


class WebFirewall(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, stage_arns: Sequence[str], rate_limit: int
    ) -> None:
        super().__init__(scope, construct_id)
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility("FulfillmentWebAcl"),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="RateLimitPerIp",
                    priority=0,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            limit=rate_limit, aggregate_key_type="IP"
                        )
                    ),
                    visibility_config=_visibility("RateLimitPerIp"),
                ),
                wafv2.CfnWebACL.RuleProperty(
                    name="AWSManagedRulesCommonRuleSet",
                    priority=1,
                    override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                            vendor_name="AWS",
                            name="AWSManagedRulesCommonRuleSet",
                            # Counted, not blocked: a bare WAF 403 would hide our own answers
                            # (the token may be up to 16 KiB; markup typed into the sign-up
                            # form is escaped and re-shown with a message by the app).
                            rule_action_overrides=[
                                wafv2.CfnWebACL.RuleActionOverrideProperty(
                                    name=name,
                                    action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={}),
                                )
                                for name in COUNTED_COMMON_RULES
                            ],
                        )
                    ),
                    visibility_config=_visibility("AWSManagedRulesCommonRuleSet"),
                ),
            ],
        )
        # The first keeps the construct id it had when there was one stage.
        for index, stage_arn in enumerate(stage_arns):
            wafv2.CfnWebACLAssociation(
                self,
                f"Association{index or ''}",
                resource_arn=stage_arn,
                web_acl_arn=self.web_acl.attr_arn,
            )
