-- Argo CD health check for conveyor.dev/Pipeline (argocd-cm key
-- resource.customizations.health.conveyor.dev_Pipeline). Lua 5.1, as Argo CD's gopher-lua runs it;
-- `obj` is the Pipeline. Tested against statuses a real controller wrote: tests/argocd-health.sh.
--
-- Conveyor writes the kstatus conditions (Ready, Reconciling, Stalled; exactly one is True) and,
-- per environment, status.environments[].phase. This maps them to Argo CD's health:
--   Degraded     Stalled=True: a release failed or was rolled back, or a namespace refuses the
--                pipeline; a person must act (the reason and message say how). The pause also
--                stalls a pipeline that holds a release back, but that is Suspended, below.
--   Suspended    the pipeline is paused (annotation conveyor.dev/paused, or reason Paused), or an
--                environment is AwaitingApproval (`conveyor approve`).
--   Healthy      Ready=True for the current generation: every environment has settled.
--   Progressing  anything else: a deployment is in flight, or the controller has not yet written
--                status for the current generation.

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

-- Status written for an older spec says nothing about the current one.
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

if is_true(stalled) and stalled.reason ~= "Paused" then
  return { status = "Degraded", message = text(stalled.reason, "Stalled") .. ": " .. text(stalled.message, "") }
end

local annotations = obj.metadata.annotations or {}
local paused_value = string.lower(text(annotations["conveyor.dev/paused"], ""))
local paused = string.match(paused_value, "^%s*true%s*$") ~= nil
if paused or (is_true(stalled) and stalled.reason == "Paused") or (is_true(ready) and ready.reason == "Paused") then
  local why = ""
  if is_true(stalled) then
    why = text(stalled.message, "")
  elseif is_true(ready) then
    why = text(ready.message, "")
  elseif is_true(reconciling) then
    why = "paused; deployments in flight finish: " .. text(reconciling.message, "")
  end
  if why == "" then
    why = "paused"
  end
  return { status = "Suspended", message = "Paused: " .. why }
end

for _, env in ipairs(status.environments or {}) do
  if env.phase == "AwaitingApproval" then
    return {
      status = "Suspended",
      message = text(env.name, "an environment") .. ": AwaitingApproval: "
        .. text(env.awaitingApproval, "a release") .. " waits for `conveyor approve "
        .. text(obj.metadata.name, "PIPELINE") .. " " .. text(env.name, "ENVIRONMENT") .. "`",
    }
  end
end

if is_true(ready) then
  return { status = "Healthy", message = text(ready.message, "every environment has settled") }
end

if is_true(reconciling) then
  return { status = "Progressing", message = text(reconciling.reason, "Reconciling") .. ": " .. text(reconciling.message, "") }
end
return { status = "Progressing", message = "Waiting for the Conveyor controller" }
