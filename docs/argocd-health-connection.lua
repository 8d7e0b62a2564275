-- Argo CD health check for d365.salesops.io/D365Connection.
--
-- The status follows kstatus (Ready / Reconciling / Stalled conditions plus
-- a top-level observedGeneration), so this only translates it into Argo
-- CD's words:
--   Healthy      Ready=True for the current generation: a token was
--                obtained (Authenticated), also when $metadata could not be
--                read (MetadataUnavailable: orders still work)
--   Degraded     Stalled=True: a human must act (SecretNotFound,
--                Unauthorized, ConnectionNotReady, FieldNotFound,
--                FieldNotEditable, EntitySetNotFound)
--   Progressing  not checked yet, the spec changed and was not checked
--                again (observedGeneration lags), or the token endpoint is
--                unreachable (Reconciling=True, Unavailable)
-- Install: docs/operations.md#argo-cd. Written for Lua 5.1 (gopher-lua, the
-- interpreter Argo CD embeds); tests/it/argocd_health.rs runs it on statuses
-- the operator's own code produces, tests/e2e/health.rs on live objects.
local hs = {}

local function condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c)
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

local generation = obj.metadata and obj.metadata.generation
local status = obj.status
if status == nil or status.conditions == nil or #status.conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to check the connection"
  return hs
end

if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Spec generation " .. generation .. " not checked yet (observed " .. tostring(status.observedGeneration) .. ")"
  return hs
end

local stalled = condition(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

local ready = condition(status.conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready)
else
  hs.message = "Waiting for the operator to check the connection"
end
return hs
