"""Which scopes may call which RulesService method (README "Security", docs/api.md)."""

from services.common.auth import MethodRule, rule

PREFIX = "/rules.v1.RulesService/"
RULES_METHODS: dict[str, MethodRule] = {
    PREFIX + name: r
    for name, r in {
        "Evaluate": rule("rules.evaluate"),
        "EvaluateStream": rule("rules.evaluate"),
        "EvaluateBatch": rule("rules.evaluate"),
        "ListStandards": rule("rules.read", "rules.evaluate"),
        "GetStandard": rule("rules.read", "rules.evaluate"),
        "ListApplicableClauses": rule("rules.read", "rules.evaluate"),
        "ListFacts": rule("rules.read", "rules.evaluate"),
        "ListRegions": rule("rules.read", "rules.evaluate"),
        "UpsertEnterprise": rule("rules.write"),
        "GetEnterpriseStatus": rule("rules.read"),
        "ListWhitelist": rule("rules.read"),
        "ListWhitelistSizes": rule("rules.read"),
        "ListEnterprises": rule("rules.read"),
        "ReportEvent": rule("rules.write"),
        "ReportEventStream": rule("rules.write"),  # each event against the caller's rate
        "CheckInspection": rule("inspection.check"),
        "VerifyInspectionCode": rule("rules.read", "inspection.check"),
        "WatchChanges": rule("rules.read"),
    }.items()
}
