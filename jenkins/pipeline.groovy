// twinserve's delivery pipeline in Jenkins. Thin on purpose: every stage runs the same
// command as `make pipeline`, one stage at a time, on the run record the first stage
// creates (var/state/pipeline/<run id>.json; the logic is twinserve/pipeline/).
// tests/unit/test_jenkinsfile.py checks that these stages are the local runner's.
//
// Parameters reach the shell as environment variables inside single-quoted scripts:
// no shell string is ever built from them.
pipeline {
    agent any
    options {
        disableConcurrentBuilds()   // one stack, one production colour: one run at a time
        timestamps()
    }
    parameters {
        string(name: 'MODEL_DIR', defaultValue: 'models/regressor', description: 'model directory to train, archive and ship')
        string(name: 'VERSION', defaultValue: '', description: 'version to build (empty: the next minor version)')
        string(name: 'SEED', defaultValue: '', description: 'training seed (empty: the training script default)')
        booleanParam(name: 'SKIP_TESTS', defaultValue: false, description: 'skip the unit tests stage')
        // The stack to ship to. Its state (production colour), model store and var/ must be the
        // live stack's: run the agent in the checkout where `make up` ran, or name here a stack
        // file whose var_dir, state_dir and model_store are that checkout's, as absolute paths.
        string(name: 'TWINSERVE_STACK', defaultValue: '', description: 'stack description of the live stack (empty: config/stack.yaml of this workspace)')
    }
    environment {
        RUN_ID = "jenkins-${env.BUILD_NUMBER}-${currentBuild.startTimeInMillis}"
        PIPELINE = '.venv/bin/python -m twinserve pipeline'
    }
    stages {
        stage('test') {
            steps {
                sh 'make install'
                sh '$PIPELINE start --model-dir "$MODEL_DIR" --run-id "$RUN_ID" ${VERSION:+--version "$VERSION"}'
                sh '$PIPELINE stage test --run-id "$RUN_ID" $([ "$SKIP_TESTS" = true ] && echo --skip)'
            }
        }
        stage('train') {
            steps { sh '$PIPELINE stage train --run-id "$RUN_ID" ${SEED:+--seed "$SEED"}' }
        }
        stage('archive') {
            steps { sh '$PIPELINE stage archive --run-id "$RUN_ID"' }
        }
        stage('deploy') {
            steps { sh '$PIPELINE stage deploy --run-id "$RUN_ID"' }
        }
        stage('smoke') {
            steps { sh '$PIPELINE stage smoke --run-id "$RUN_ID"' }
        }
        stage('loadgate') {
            steps { sh '$PIPELINE stage loadgate --run-id "$RUN_ID"' }
            post {
                always {   // Locust's CSV and HTML reports, kept whether the gate passed or not
                    archiveArtifacts artifacts: 'var/pipeline/*/loadgate/*', allowEmptyArchive: true
                }
            }
        }
        stage('approve') {
            steps {
                timeout(time: 1, unit: 'HOURS') {
                    input message: "Promote ${params.MODEL_DIR} ${params.VERSION} from staging to production?", ok: 'Promote'
                }
                sh '$PIPELINE stage approve --run-id "$RUN_ID" --approve'
            }
        }
        stage('promote') {
            steps { sh '$PIPELINE stage promote --run-id "$RUN_ID"' }
        }
        stage('bake') {
            // A failed bake rolls production back inside the command itself.
            steps { sh '$PIPELINE stage bake --run-id "$RUN_ID"' }
        }
    }
    post {
        aborted {
            sh '$PIPELINE abort --run-id "$RUN_ID"'   // rolls back if this run had promoted
        }
        always {
            sh '$PIPELINE show --run-id "$RUN_ID" || true'
        }
    }
}
