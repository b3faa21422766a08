-- Single sign-on binds an account to the provider's identity (api/oidc.py): the first sign-in by
-- the bureau's provider records its issuer and subject (`sub`, which the provider never reuses and
-- the person cannot edit); from then on that identity signs in as this account whatever its
-- editable claims say, and no other identity can. `vigil accounts sso-unlink` clears it (a person's
-- provider account recreated). Forward-only: a later change is a new file, never an edit.
ALTER TABLE accounts ADD COLUMN sso_identity text UNIQUE
    CHECK (sso_identity IS NULL OR length(sso_identity) BETWEEN 3 AND 1000);
