--[[ The production switch: which colour each model's /predict/<model> goes
to, one entry per model in a shared dictionary, so that flipping one needs
no reload (a reload closes keep-alive connections under clients) and never
touches another model's.

Nginx never guesses a colour. At start the master reads each model's state
file and validates it; if one is missing or holds anything but a known colour,
that model's /predict/<model> and /test/predict/<model> answer a JSON 503
naming the problem (the other models are served) until the control plane sets
its colour through the admin server (PUT /production?model=<model>).
The admin token is read here too, once, by the master (root): the workers
never open the token file. So are the colours' TorchServe inference keys
(TorchServe's key_file.json, 0600): every request Nginx proxies carries its
colour's key. A colour that restarts writes new keys; the control plane
publishes them here (PUT /inference-key?colour=...) without a reload. ]]

local cache = require("twinserve.cache")
local secret = require("twinserve.secret")

local M = {}

local config      -- the rendered table passed to init
local token       -- the admin token, or nil (then the admin server refuses everything)
local token_problem

local function read_file(path)
    local f, err = io.open(path, "rb")
    if not f then
        return nil, err
    end
    local text = f:read("*a")
    f:close()
    return text
end

local function member(list, value)
    for _, v in ipairs(list) do
        if v == value then
            return true
        end
    end
    return false
end

local function known(colour)
    return member(config.colours, colour)
end

-- The colour a state file's text names, or nil and why not (one line, names the file and the fix).
function M.parse_state(text, path, colours)
    local fix = "write one of " .. table.concat(colours, ", ") .. " into it, then run `make up`"
    if text == nil then
        return nil, path .. " is missing; " .. fix
    end
    local colour = text:match("^%s*(.-)%s*$")
    for _, c in ipairs(colours) do
        if c == colour then
            return colour
        end
    end
    if colour:find("[^%w%-_ ]") then
        return nil, path .. " holds bytes that are not a colour name; " .. fix
    end
    if #colour > 32 then
        colour = colour:sub(1, 32) .. "..."
    end
    return nil, path .. " says '" .. colour .. "', not a known colour; " .. fix
end

-- TorchServe's inference key from its key file's text (gson's JSON, pretty-printed), or nil.
function M.parse_inference_key(text)
    return text and text:match('"inference"%s*:%s*{%s*"key"%s*:%s*"([%w%-_=]+)"')
end

local function valid_key(key)
    return key ~= nil and key:match("^[%w%-_=]+$") ~= nil and #key <= 256
end

function M.init(cfg)
    config = cfg
    local dict = ngx.shared[cfg.dict]
    for colour, path in pairs(cfg.key_files) do
        dict:set("key|" .. colour, M.parse_inference_key(read_file(path)))
    end
    for _, model in ipairs(cfg.models) do
        local path = cfg.production_files[model]
        local text = read_file(path)
        local colour, problem = M.parse_state(text, path, cfg.colours)
        dict:set("production|" .. model, colour)
        dict:set("problem|" .. model, problem)
    end
    local text = read_file(cfg.token_file)
    token = text and text:match("^%s*([%w%-_]+)%s*$")
    if not token then
        token_problem = "no admin token in " .. cfg.token_file .. "; run `make up`, then restart Nginx"
    end
end

-- The production colour of `model` (default: the stack's default model), or nil.
function M.production(model)
    return ngx.shared[config.dict]:get("production|" .. (model or config.default_model))
end

function M.other(colour)
    for _, c in ipairs(config.colours) do
        if c ~= colour then
            return c
        end
    end
end

local function json_string(s)
    return '"' .. s:gsub('[%c"\\]', function(ch)
        return string.format("\\u%04x", ch:byte())
    end) .. '"'
end
M.json_string = json_string

local function answer(status, body)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.say(body)
    return ngx.exit(ngx.HTTP_OK)
end

--[[ Rewrite phase of /predict/<model> (route "production") and /test/predict/<model>
("test"): sets $colour, or answers 503 when the model's production colour is not known. ]]
function M.route(route, model)
    local production = M.production(model)
    if not production then
        local problem = ngx.shared[config.dict]:get("problem|" .. model) or "the production colour is not set"
        local why = "no production colour for " .. model .. ": " .. problem
        return answer(503, '{"error": ' .. json_string(why) .. "}")
    end
    local colour = route == "test" and M.other(production) or production
    ngx.var.colour = colour
    local key = ngx.shared[config.dict]:get("key|" .. colour)
    ngx.var.ts_authorization = key and ("Bearer " .. key) or ""  -- none: TorchServe refuses (400), we say 503
end

-- Rewrite phase of /healthz: the default model's production colour, or 503 while there is none.
function M.health()
    if not M.production() then
        return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
    end
    return M.route("production", config.default_model)
end

local function authorised()
    if not token then
        return false, token_problem
    end
    local given = ngx.var.http_authorization or ""
    return secret.equal(given, "Bearer " .. token), "missing or wrong token; send Authorization: Bearer <admin token>"
end

-- True (and the 401 sent) unless the request carries the admin token.
local function refused()
    local ok, why = authorised()
    if ok then
        return false
    end
    ngx.header["WWW-Authenticate"] = 'Bearer realm="twinserve-admin"'
    answer(401, '{"error": ' .. json_string(why) .. "}")
    return true
end

-- The admin server's /inference-key?colour=C: PUT the colour's new TorchServe inference key.
function M.admin_inference_key()
    if refused() then
        return
    end
    if ngx.req.get_method() ~= "PUT" then
        return answer(405, '{"error": "use PUT"}')
    end
    local colour = ngx.var.arg_colour
    if not known(colour) then
        return answer(400, '{"error": "unknown colour; expected one of ' .. table.concat(config.colours, ", ") .. '"}')
    end
    ngx.req.read_body()
    local key = (ngx.req.get_body_data() or ""):match("^%s*(.-)%s*$")
    if not valid_key(key) then
        return answer(400, '{"error": "not a TorchServe key"}')
    end
    ngx.shared[config.dict]:set("key|" .. colour, key)
    return answer(200, '{"colour": "' .. colour .. '"}')
end

-- The admin server's /production?model=M (default: the default model): GET says, PUT sets. Both need the token.
function M.admin_production()
    if refused() then
        return
    end
    local model = ngx.var.arg_model or config.default_model
    if not member(config.models, model) then
        local why = "unknown model; expected one of " .. table.concat(config.models, ", ")
        return answer(400, '{"error": ' .. json_string(why) .. "}")
    end
    local dict = ngx.shared[config.dict]
    local method = ngx.req.get_method()
    if method == "PUT" then
        ngx.req.read_body()
        local colour = (ngx.req.get_body_data() or ""):match("^%s*(.-)%s*$")
        if not known(colour) then
            local expected = table.concat(config.colours, ", ")
            return answer(400, '{"error": "unknown colour; expected one of ' .. expected .. '"}')
        end
        dict:set("production|" .. model, colour)
        dict:set("problem|" .. model, nil)
        cache.invalidate(model)  -- after the colour: see cache.lua
    elseif method ~= "GET" then
        return answer(405, '{"error": "use GET or PUT"}')
    end
    local production = dict:get("production|" .. model)
    if not production then
        local problem = json_string(dict:get("problem|" .. model) or "")
        return answer(200, '{"model": "' .. model .. '", "production": null, "problem": ' .. problem .. "}")
    end
    return answer(200, '{"model": "' .. model .. '", "production": "' .. production .. '"}')
end

return M
