--[[ Nginx's Lua entry points, called from the rendered nginx.conf. `init`
runs once in the master (init_by_lua) with the table twinserve renders from
the stack description; the others are one call per phase. ]]

local switch = require("twinserve.switch")
local metrics = require("twinserve.metrics")
local cache = require("twinserve.cache")

local M = {}

function M.init(cfg)
    switch.init(cfg)
    metrics.init(cfg)
    cache.init(cfg)
    M.init_frontend(cfg)
end

-- Rewrite phase of a model's route: the cache's generation first, then the colour (cache.lua says why).
function M.route(route, model)
    cache.begin(route, model)
    return switch.route(route, model)
end

M.lookup = cache.lookup
M.health = switch.health
M.admin_production = switch.admin_production
M.admin_inference_key = switch.admin_inference_key
M.observe = metrics.observe

--[[ Header and body filters of the proxied routes. Every answer of the model's
handler, its 4xx included, carries X-Model-Version and passes through. An
answer without it comes from TorchServe's frontend: a 400 there is a missing,
wrong or stale inference key (the colour restarted and its new key was not
published to Nginx), a 507 a worker that died holding the request, a 503 no
worker at all. Each is the service failing, not the client: a JSON 503 with
Retry-After, counted as such. ]]
local frontend = {}  -- status -> the JSON body that replaces TorchServe's frontend answer
local function json_error(message)
    return '{"error": ' .. switch.json_string(message) .. "}\n"
end

function M.init_frontend(cfg)
    frontend = { [400] = json_error("the serving colour refused the proxy (its TorchServe key changed); "
        .. "retry shortly, or run `make up` to publish the new key") }
    for _, pair in ipairs(cfg.frontend_errors) do  -- {status, message}
        frontend[pair[1]] = json_error(pair[2])
    end
end

function M.header_filter(model)
    local replacement = frontend[ngx.status]
    if replacement and ngx.var.upstream_addr and not ngx.var.upstream_http_x_model_version then
        ngx.ctx.replacement = replacement
        ngx.status = ngx.HTTP_SERVICE_UNAVAILABLE
        ngx.header["Content-Type"] = "application/json"
        ngx.header["Content-Length"] = #replacement
        ngx.header["Retry-After"] = "1"
    end
    cache.header(model)
end

function M.body_filter()
    local replacement = ngx.ctx.replacement
    if replacement then
        ngx.arg[1] = ngx.ctx.sent and "" or replacement
        ngx.ctx.sent = true
        return
    end
    cache.body()
end

function M.metrics()
    local out = {}
    cache.exposition(out)
    ngx.print(metrics.exposition() .. table.concat(out, "\n") .. "\n")
end

return M
