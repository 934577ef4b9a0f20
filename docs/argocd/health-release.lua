-- Argo CD health check for conveyor.dev/Release (argocd-cm key
-- resource.customizations.health.conveyor.dev_Release). Lua 5.1, as Argo CD's gopher-lua runs it;
-- `obj` is the Release. Tested against statuses a real controller wrote: tests/argocd-health.sh.
--
-- A Release's health is its packaging: Healthy once its artifact is stored (phase Packaged,
-- Ready=True), whatever its journey through the environments (that is the Pipeline's health).
--   Degraded     Stalled=True (an invalid spec, a spec changed after packaging, a packaging
--                failure such as a missing tag, or a digest mismatch) or phase Failed.
--   Healthy      phase Packaged and Ready=True for the current generation.
--   Progressing  anything else: Pending, Packaging, or retrying an unreachable repository.

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function text(value, default)
  if value == nil or value == "" then
    return default
  end
  return tostring(value)
end

local status = obj.status
if status == nil or status.conditions == nil then
  return { status = "Progressing", message = "Waiting for the Conveyor controller to report status" }
end

local generation = obj.metadata.generation
local observed = status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  return {
    status = "Progressing",
    message = "Waiting for the Conveyor controller to observe generation " .. tostring(generation)
      .. " (status is of generation " .. text(observed, "none") .. ")",
  }
end

local ready = condition(status, "Ready")
local reconciling = condition(status, "Reconciling")
local stalled = condition(status, "Stalled")
local phase = text(status.phase, "Pending")

if is_true(stalled) then
  return { status = "Degraded", message = phase .. ": " .. text(stalled.reason, "Stalled") .. ": " .. text(stalled.message, "") }
end
if phase == "Failed" then
  return { status = "Degraded", message = "Failed: packaging failed" }
end

if phase == "Packaged" and is_true(ready) then
  local message = "Packaged: " .. text(ready.message, "")
  if status.environment ~= nil then
    message = message .. "; furthest environment: " .. status.environment
  end
  return { status = "Healthy", message = message }
end

if is_true(reconciling) then
  return { status = "Progressing", message = phase .. ": " .. text(reconciling.reason, "Reconciling") .. ": " .. text(reconciling.message, "") }
end
return { status = "Progressing", message = phase .. ": waiting for the Conveyor controller" }
