--[[ Nginx's Lua entry points, called from the rendered nginx.conf. `init`
runs once in the master (init_by_lua) with the table twinserve renders from
the stack description; the others are one call per phase. ]]

local switch = require("twinserve.switch")
local metrics = require("twinserve.metrics")

local M = {}

function M.init(cfg)
    switch.init(cfg)
    metrics.init(cfg)
end

M.route = switch.route
M.health = switch.health
M.admin_production = switch.admin_production
M.admin_inference_key = switch.admin_inference_key
M.observe = metrics.observe

--[[ Header and body filters of the proxied routes. Every answer of the model's
handler, its 400s included, carries X-Model-Version; a 400 without it comes
from TorchServe's frontend, which in 0.12 answers a missing, wrong or stale
inference key with 400 (the colour restarted and its new key was not
published to Nginx). That is the service failing, not the client: it becomes
a JSON 503 with Retry-After, counted as such. ]]
local REFUSED = '{"error": "the serving colour refused the proxy (its TorchServe key changed); '
    .. 'retry shortly, or run `make up` to publish the new key"}\n'

function M.frontend_refusal_header()
    if ngx.status == 400 and ngx.var.upstream_addr and not ngx.var.upstream_http_x_model_version then
        ngx.ctx.refused = true
        ngx.status = ngx.HTTP_SERVICE_UNAVAILABLE
        ngx.header["Content-Type"] = "application/json"
        ngx.header["Content-Length"] = #REFUSED
        ngx.header["Retry-After"] = "1"
    end
end

function M.frontend_refusal_body()
    if ngx.status == ngx.HTTP_SERVICE_UNAVAILABLE and ngx.ctx.refused then  -- ngx.ctx only on the rare path
        ngx.arg[1] = ngx.ctx.sent and "" or REFUSED
        ngx.ctx.sent = true
    end
end

function M.metrics()
    ngx.print(metrics.exposition())
end

return M
