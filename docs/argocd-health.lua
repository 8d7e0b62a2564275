-- Argo CD health check for d365.salesops.io/SalesOrderStatus.
--
-- The status follows kstatus (Ready / Reconciling / Stalled conditions plus
-- observedGeneration), so this only translates it into Argo CD's words:
--   Healthy      Ready=True for the current generation (D365 holds the spec)
--   Degraded     Stalled=True (a human must act: Forbidden, NotFound,
--                Rejected, Drifted under the Observe policy, ...)
--   Suspended    Ready reason Suspended (spec.suspend is true)
--   Progressing  anything else: not reconciled yet, the spec changed and the
--                operator has not caught up (observedGeneration lags), or
--                still trying (Conflict, Throttled, Unavailable)
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
  hs.message = "Waiting for the operator to reconcile the order"
  return hs
end

if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Spec generation " .. generation .. " not reconciled yet (observed " .. tostring(status.observedGeneration) .. ")"
  return hs
end

local stalled = condition(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

-- A suspended order is Ready (reason Suspended) so that it never blocks a
-- health wait; Argo CD has a word of its own for it.
local ready = condition(status.conditions, "Ready")
if ready ~= nil and ready.reason == "Suspended" then
  hs.status = "Suspended"
  hs.message = describe(ready)
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

if ready ~= nil and ready.reason == "Drifted" then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end

local reconciling = condition(status.conditions, "Reconciling")
hs.status = "Progressing"
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
elseif ready ~= nil then
  hs.message = describe(ready)
else
  hs.message = "Waiting for the operator to reconcile the order"
end
return hs
